/**
 * The keys a job's parallel engine jobs were given, by (key-field value,
 * window). Each engine job asks for every key it meets once (its answer
 * table remembers the rest), so with N of them the key store would be asked
 * N times for most keys; the second and later asks are answered here, as
 * the CLI's host does with its cache of keys already given.
 *
 * Compact: a `Map` from the value and window to a slot, and the slots' key
 * links, key ids, use counts and key material in flat arrays (~150 bytes a
 * key). Bounded: when full it forgets everything (material zeroed).
 *
 * Security: the map's keys are the key-field values themselves (as in the
 * engine's requests, in memory only; never logged).
 * @packageDocumentation
 */

/** @internal A key as the engine takes it. */
export interface GivenKey {
  keyLink: string;
  keyId: number;
  cipher: string;
  material: Uint8Array;
  usesBefore: number;
}

/** @internal */
export class GivenKeys {
  #limit: number;
  /** Slots by window, then by key-field value (no string made per lookup). */
  #index = new Map<number, Map<string, number>>();

  #links: string[] = [];
  #ids: Uint32Array;
  #uses: Float64Array;
  #material: Uint8Array;
  #keyLen: number;
  #cipher: string;

  constructor(limit: number, cipher: string, keyLen: number) {
    this.#limit = Math.max(1, limit);
    this.#cipher = cipher;
    this.#keyLen = keyLen;
    const n = Math.min(this.#limit, 1 << 16);
    this.#ids = new Uint32Array(n);
    this.#uses = new Float64Array(n);
    this.#material = new Uint8Array(n * keyLen);
  }

  /** The slot of the key given for (value, window), or -1. */
  slot(value: string, window: number): number {
    return this.#index.get(window)?.get(value) ?? -1;
  }

  /** Slot `s`'s key link, key id and the store's use count. */
  link(s: number): string {
    return this.#links[s];
  }
  keyId(s: number): number {
    return this.#ids[s];
  }
  usesBefore(s: number): number {
    return this.#uses[s];
  }

  /** Copies slot `s`'s key material into `out` at `at`. */
  copyMaterial(s: number, out: Uint8Array, at: number): void {
    out.set(this.#material.subarray(s * this.#keyLen, (s + 1) * this.#keyLen), at);
  }

  /** Remembers a key the store gave (keys of another shape are not kept). */
  put(value: string, window: number, k: GivenKey): void {
    if (k.cipher !== this.#cipher || k.material?.length !== this.#keyLen || typeof k.keyLink !== 'string') return;
    this.putColumns(value, window, k.keyLink, k.keyId, k.material, 0, Number(k.usesBefore) || 0);
  }

  /** `put` of a key in columns: its material at `material[at .. at + key length]`. */
  putColumns(value: string, window: number, keyLink: string, keyId: number, material: Uint8Array, at: number, usesBefore: number): void {
    if (this.slot(value, window) >= 0) return;
    if (this.#links.length >= this.#limit) this.clear();
    const s = this.#links.length;
    if (s >= this.#ids.length) this.#grow();
    let byValue = this.#index.get(window);
    if (!byValue) this.#index.set(window, (byValue = new Map()));
    byValue.set(value, s);
    this.#links.push(keyLink);
    this.#ids[s] = keyId;
    this.#uses[s] = usesBefore;
    this.#material.set(material.subarray(at, at + this.#keyLen), s * this.#keyLen);
  }

  #grow(): void {
    const n = Math.min(this.#limit, 2 * this.#ids.length);
    const ids = new Uint32Array(n);
    ids.set(this.#ids);
    const uses = new Float64Array(n);
    uses.set(this.#uses);
    const material = new Uint8Array(n * this.#keyLen);
    material.set(this.#material);
    this.#material.fill(0);
    this.#ids = ids;
    this.#uses = uses;
    this.#material = material;
  }

  /** Forgets every key (material zeroed). */
  clear(): void {
    this.#index.clear();
    this.#links = [];
    this.#material.fill(0);
  }
}
