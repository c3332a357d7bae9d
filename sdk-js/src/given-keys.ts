/**
 * The keys a job's parallel engine jobs were given, by (key-field value,
 * window). Each engine job asks for every key it meets that its answer
 * table does not hold, so with N of them the key store would be asked N
 * times for most keys, and again whenever an answer table forgot a key; those
 * asks are answered here, as the CLI's host does with its cache of keys
 * already given.
 *
 * Compact: entries are found by the 128-bit keyed id the engine jobs compute
 * for each request (`Job.setRequestIdKey`, SipHash-1-3 under a random key per
 * job), in an open-addressing table of typed arrays; each entry keeps the key
 * link as 128 bits, the key id, the store's use count and the key material:
 * about 100 bytes a key, no string or object per key. Keys whose link is not
 * a canonical UUID (a custom store's) are not kept: they are asked for again.
 * Bounded: when full it forgets everything (material zeroed).
 *
 * Security: no key-field value is kept, only its keyed id; the material is
 * zeroed when forgotten.
 * @packageDocumentation
 */
import { formatUuid, parseUuid } from './key-ledger.js';

/** @internal */
export class GivenKeys {
  #limit: number;
  #keyLen: number;
  /** Index: 4 words of id per slot, and the entry there plus one (0: empty). */
  #ids = new Uint32Array(0);
  #entry = new Int32Array(0);
  /** Entries: key link (4 words), key id, the store's use count, material. */
  #links = new Uint32Array(0);
  #keyIds = new Uint32Array(0);
  #uses = new Float64Array(0);
  #material = new Uint8Array(0);
  #count = 0;

  /** @param limit - keys kept at most (0: none) */
  constructor(limit: number, keyLen: number) {
    this.#limit = Math.max(0, limit);
    this.#keyLen = keyLen;
  }

  /** Keys held. */
  get size(): number {
    return this.#count;
  }

  /** The index slot of the id at `ids[4 i ..]`, or of the free slot where it belongs. */
  #find(ids: Uint32Array, i: number): number {
    const a = ids[4 * i], b = ids[4 * i + 1], c = ids[4 * i + 2], d = ids[4 * i + 3];
    const mask = this.#entry.length - 1;
    // The id is a keyed hash already: any of its words spreads well.
    let h = (a ^ d) & mask;
    for (;;) {
      if (this.#entry[h] === 0) return h;
      const x = 4 * h;
      if (this.#ids[x] === a && this.#ids[x + 1] === b && this.#ids[x + 2] === c && this.#ids[x + 3] === d) return h;
      h = (h + 1) & mask;
    }
  }

  /** The entry of the key given for the request whose id is at `ids[4 i ..]`, or -1. */
  slot(ids: Uint32Array, i: number): number {
    if (this.#count === 0) return -1;
    return this.#entry[this.#find(ids, i)] - 1;
  }

  /** Entry `s`'s key link, key id and the store's use count. */
  link(s: number): string {
    return formatUuid(this.#links, 4 * s);
  }
  keyId(s: number): number {
    return this.#keyIds[s];
  }
  usesBefore(s: number): number {
    return this.#uses[s];
  }

  /** Copies entry `s`'s key material into `out` at `at`. */
  copyMaterial(s: number, out: Uint8Array, at: number): void {
    out.set(this.#material.subarray(s * this.#keyLen, (s + 1) * this.#keyLen), at);
  }

  /**
   * Remembers the key the store gave for the request whose id is at
   * `ids[4 i ..]`: its material at `material[at .. at + key length]`.
   */
  put(ids: Uint32Array, i: number, keyLink: string, keyId: number, material: Uint8Array, at: number, usesBefore: number): void {
    if (this.#limit === 0 || this.slot(ids, i) >= 0) return;
    if (this.#count >= this.#limit) this.clear();
    if (this.#count >= this.#keyIds.length) this.#growEntries();
    const e = this.#count;
    if (!parseUuid(keyLink, this.#links, 4 * e)) return;
    if (2 * (e + 1) > this.#entry.length) this.#growIndex();
    const h = this.#find(ids, i);
    this.#ids.set(ids.subarray(4 * i, 4 * i + 4), 4 * h);
    this.#entry[h] = e + 1;
    this.#keyIds[e] = keyId;
    this.#uses[e] = usesBefore;
    this.#material.set(material.subarray(at, at + this.#keyLen), e * this.#keyLen);
    this.#count++;
  }

  #growEntries(): void {
    const n = Math.min(this.#limit, Math.max(1024, 2 * this.#keyIds.length));
    const links = new Uint32Array(4 * n);
    links.set(this.#links);
    const keyIds = new Uint32Array(n);
    keyIds.set(this.#keyIds);
    const uses = new Float64Array(n);
    uses.set(this.#uses);
    const material = new Uint8Array(n * this.#keyLen);
    material.set(this.#material);
    this.#material.fill(0);
    this.#links = links;
    this.#keyIds = keyIds;
    this.#uses = uses;
    this.#material = material;
  }

  #growIndex(): void {
    const ids = this.#ids, entry = this.#entry;
    const n = Math.max(2048, 2 * entry.length);
    this.#ids = new Uint32Array(4 * n);
    this.#entry = new Int32Array(n);
    for (let h = 0; h < entry.length; h++) {
      if (entry[h] === 0) continue;
      const to = this.#find(ids, h);
      this.#ids.set(ids.subarray(4 * h, 4 * h + 4), 4 * to);
      this.#entry[to] = entry[h];
    }
  }

  /** Forgets every key (material zeroed). */
  clear(): void {
    this.#material.fill(0);
    this.#entry.fill(0);
    this.#count = 0;
  }
}
