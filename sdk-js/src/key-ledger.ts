/**
 * The one per-key record a job keeps on the JS side when its engine job runs
 * with a bounded key cache: which keys the keys output already lists, and the
 * values encrypted with each key so far (across key-cache evictions). As the
 * CLI's host (`KeyUses`), a canonical UUID key link is kept as 128 bits in a
 * typed-array hash table (about 24-48 bytes a key, no string per key); other
 * links (custom stores may issue any) in a `Map`.
 * @packageDocumentation
 */

/**
 * @internal Use counts as an engine job gives them: `[keyLink, count]`
 * pairs, or in columns (`Job.packKeyUses`: canonical UUID links as four
 * big-endian words each, the rest as pairs).
 */
export type KeyUses = [string, number][] | { ids: Uint32Array; uses: Float64Array; other: [string, number][] };

/** Character codes of the lowercase hex digits. */
const DIGIT = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));
const HYPHEN = 0x2d;
const fromCharCode = String.fromCharCode;

/**
 * @internal Parses a canonical UUID (lowercase, hyphenated) into four
 * big-endian words at `out[at..at + 4]`; false (and `out` partly written) for
 * any other link.
 */
export function parseUuid(link: string, out: Uint32Array, at: number): boolean {
  if (link.length !== 36) return false;
  let word = 0;
  let digits = 0;
  for (let i = 0; i < 36; i++) {
    const c = link.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d) return false;
      continue;
    }
    const v = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
    if (v < 0) return false;
    word = (word << 4) | v;
    if (++digits % 8 === 0) out[at + digits / 8 - 1] = word >>> 0;
  }
  return true;
}

/**
 * @internal The canonical UUID text of the four words at `ids[at..at + 4]`.
 * Made in one piece from character codes: concatenating pieces makes V8
 * build a rope of ~15 nodes (~430 bytes, against ~55 for the flat string,
 * and three times the time), and this runs for every key given and every
 * key whose uses are recorded.
 */
export function formatUuid(ids: Uint32Array, at: number): string {
  const a = ids[at], b = ids[at + 1], c = ids[at + 2], d = ids[at + 3];
  const D = DIGIT;
  return fromCharCode(
    D[a >>> 28], D[(a >>> 24) & 15], D[(a >>> 20) & 15], D[(a >>> 16) & 15], D[(a >>> 12) & 15], D[(a >>> 8) & 15], D[(a >>> 4) & 15], D[a & 15], HYPHEN,
    D[b >>> 28], D[(b >>> 24) & 15], D[(b >>> 20) & 15], D[(b >>> 16) & 15], HYPHEN,
    D[(b >>> 12) & 15], D[(b >>> 8) & 15], D[(b >>> 4) & 15], D[b & 15], HYPHEN,
    D[c >>> 28], D[(c >>> 24) & 15], D[(c >>> 20) & 15], D[(c >>> 16) & 15], HYPHEN,
    D[(c >>> 12) & 15], D[(c >>> 8) & 15], D[(c >>> 4) & 15], D[c & 15],
    D[d >>> 28], D[(d >>> 24) & 15], D[(d >>> 20) & 15], D[(d >>> 16) & 15], D[(d >>> 12) & 15], D[(d >>> 8) & 15], D[(d >>> 4) & 15], D[d & 15],
  );
}

/** @internal Key links seen by a job, with their use counts. */
export class KeyLedger {
  /** Open addressing: 4 words of id per slot; `used[i]` = 1 when taken. */
  #ids = new Uint32Array(4 * 1024);
  #uses = new Float64Array(1024);
  #used = new Uint8Array(1024);
  /** Per slot: the order in which its key was first recorded. */
  #seq = new Uint32Array(1024);
  #count = 0;
  #other = new Map<string, number>();
  /** Whether any key has a use count yet (most lookups are then answered at once). */
  #anyUses = false;
  #w = new Uint32Array(4);

  /** Keys recorded. */
  get size(): number {
    return this.#count + this.#other.size;
  }

  /** Parses a canonical UUID (lowercase, hyphenated) into `#w`; false for any other link. */
  #parse(link: string): boolean {
    return parseUuid(link, this.#w, 0);
  }

  /** The slot of the id in `#w`, or of the free slot where it belongs. */
  #slot(): number {
    const w = this.#w;
    const mask = this.#used.length - 1;
    let h = Math.imul(w[0] ^ Math.imul(w[1], 0x9e3779b1) ^ Math.imul(w[2], 0x85ebca6b) ^ w[3], 0xc2b2ae35);
    h = (h ^ (h >>> 15)) & mask;
    for (;;) {
      if (!this.#used[h]) return h;
      const b = 4 * h;
      if (this.#ids[b] === w[0] && this.#ids[b + 1] === w[1] && this.#ids[b + 2] === w[2] && this.#ids[b + 3] === w[3]) return h;
      h = (h + 1) & mask;
    }
  }

  #grow(): void {
    const { length } = this.#used;
    const ids = this.#ids, uses = this.#uses, used = this.#used, seq = this.#seq;
    this.#ids = new Uint32Array(8 * length);
    this.#uses = new Float64Array(2 * length);
    this.#used = new Uint8Array(2 * length);
    this.#seq = new Uint32Array(2 * length);
    for (let i = 0; i < length; i++) {
      if (!used[i]) continue;
      this.#w.set(ids.subarray(4 * i, 4 * i + 4));
      const s = this.#slot();
      this.#ids.set(this.#w, 4 * s);
      this.#uses[s] = uses[i];
      this.#used[s] = 1;
      this.#seq[s] = seq[i];
    }
  }

  /** Records `link` with `n` more uses; true if it was not recorded before. */
  add(link: string, n = 0): boolean {
    if (n) this.#anyUses = true;
    if (!this.#parse(link)) {
      const had = this.#other.get(link);
      this.#other.set(link, (had ?? 0) + n);
      return had === undefined;
    }
    return this.#addParsed(n);
  }

  /** Records use counts in either shape an engine job gives them (`Job.packKeyUses`). */
  addUses(uses: KeyUses): void {
    if (Array.isArray(uses)) {
      for (const [link, n] of uses) this.add(link, n);
      return;
    }
    const { ids, uses: counts } = uses;
    const w = this.#w;
    for (let i = 0; i < counts.length; i++) {
      w[0] = ids[4 * i];
      w[1] = ids[4 * i + 1];
      w[2] = ids[4 * i + 2];
      w[3] = ids[4 * i + 3];
      if (counts[i]) this.#anyUses = true;
      this.#addParsed(counts[i]);
    }
    for (const [link, n] of uses.other) this.add(link, n);
  }

  /** `add` for the id in `#w`. */
  #addParsed(n: number): boolean {
    let s = this.#slot();
    if (this.#used[s]) {
      this.#uses[s] += n;
      return false;
    }
    if (2 * (this.#count + 1) > this.#used.length) {
      const w = this.#w.slice(); // #grow reuses #w
      this.#grow();
      this.#w.set(w);
      s = this.#slot();
    }
    this.#ids.set(this.#w, 4 * s);
    this.#uses[s] = n;
    this.#used[s] = 1;
    this.#seq[s] = this.#count;
    this.#count++;
    return true;
  }

  /** Uses recorded for `link` (0 if none). */
  uses(link: string): number {
    if (!this.#anyUses) return 0;
    if (!this.#parse(link)) return this.#other.get(link) ?? 0;
    const s = this.#slot();
    return this.#used[s] ? this.#uses[s] : 0;
  }

  /**
   * `[keyLink, uses]` of every key with uses, in slices of at most `size`,
   * in the order keys were first recorded (for keys a job created, the order
   * of their rows in a SQLite store, so updates walk the table in order).
   */
  *slices(size: number): Generator<[string, number][]> {
    let batch: [string, number][] = [];
    // Slots by the order their keys were first recorded (`#seq` is 0..count-1).
    const bySeq = new Int32Array(this.#count).fill(-1);
    for (let i = 0; i < this.#used.length; i++) {
      if (this.#used[i] && this.#uses[i] !== 0) bySeq[this.#seq[i]] = i;
    }
    for (const i of bySeq) {
      if (i < 0) continue;
      const link = formatUuid(this.#ids, 4 * i);
      batch.push([link, this.#uses[i]]);
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    for (const [link, n] of this.#other) {
      if (n === 0) continue;
      batch.push([link, n]);
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
  }
}
