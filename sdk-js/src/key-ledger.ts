/**
 * The one per-key record a job keeps on the JS side when its engine job runs
 * with a bounded key cache: which keys the keys output already lists, and the
 * values encrypted with each key so far (across key-cache evictions). As the
 * CLI's host (`KeyUses`), a canonical UUID key link is kept as 128 bits:
 * entries in typed arrays in the order keys were first recorded (32 bytes
 * each: the link, the uses and the store's row hint) behind an
 * open-addressing index of entry numbers (4 bytes a slot, at most half the
 * slots taken): 40-80 bytes a key as the arrays double, no string or object
 * per key. Other links (custom stores may issue any) are
 * kept in a `Map`.
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

/** The index slot an id's four words hash to (before probing), under `mask`. */
function slotOf(a: number, b: number, c: number, d: number, mask: number): number {
  const h = Math.imul(a ^ Math.imul(b, 0x9e3779b1) ^ Math.imul(c, 0x85ebca6b) ^ d, 0xc2b2ae35);
  return (h ^ (h >>> 15)) & mask;
}

/** @internal Key links seen by a job, with their use counts. */
export class KeyLedger {
  /** Per slot: the entry there plus one (0: empty). Never more than half full. */
  #index = new Int32Array(2048);
  /** Entries, in the order their keys were first recorded: the link's 4 words, its uses, and the store's row hint (0: none). */
  #ids = new Uint32Array(4 * 1024);
  #uses = new Float64Array(1024);
  #rows = new Float64Array(1024);
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

  /** The index slot of the id in `#w`, or of the free slot where it belongs. */
  #slot(): number {
    const w = this.#w, ids = this.#ids, index = this.#index;
    const mask = index.length - 1;
    const a = w[0], b = w[1], c = w[2], d = w[3];
    let h = slotOf(a, b, c, d, mask);
    for (;;) {
      const e = index[h];
      if (e === 0) return h;
      const x = 4 * (e - 1);
      if (ids[x] === a && ids[x + 1] === b && ids[x + 2] === c && ids[x + 3] === d) return h;
      h = (h + 1) & mask;
    }
  }

  /** Twice the index slots, the entries placed again. */
  #growIndex(): void {
    const index = new Int32Array(2 * this.#index.length);
    const mask = index.length - 1;
    const ids = this.#ids;
    for (let e = 0; e < this.#count; e++) {
      const x = 4 * e;
      let h = slotOf(ids[x], ids[x + 1], ids[x + 2], ids[x + 3], mask);
      while (index[h] !== 0) h = (h + 1) & mask;
      index[h] = e + 1;
    }
    this.#index = index;
  }

  /** Twice the room for entries. */
  #growEntries(): void {
    const ids = new Uint32Array(2 * this.#ids.length);
    ids.set(this.#ids);
    const uses = new Float64Array(2 * this.#uses.length);
    uses.set(this.#uses);
    const rows = new Float64Array(2 * this.#rows.length);
    rows.set(this.#rows);
    this.#ids = ids;
    this.#uses = uses;
    this.#rows = rows;
  }

  /**
   * Records `link` with `n` more uses; true if it was not recorded before.
   * `row`: where the key store keeps the key (`PackedKeys.rows`), if known
   * (canonical UUID links only).
   */
  add(link: string, n = 0, row = 0): boolean {
    if (n) this.#anyUses = true;
    if (!this.#parse(link)) {
      const had = this.#other.get(link);
      this.#other.set(link, (had ?? 0) + n);
      return had === undefined;
    }
    return this.#addParsed(n, row);
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
      this.#addParsed(counts[i], 0);
    }
    for (const [link, n] of uses.other) this.add(link, n);
  }

  /** `add` for the id in `#w`. */
  #addParsed(n: number, row: number): boolean {
    let s = this.#slot();
    const found = this.#index[s];
    if (found !== 0) {
      this.#uses[found - 1] += n;
      if (row && !this.#rows[found - 1]) this.#rows[found - 1] = row;
      return false;
    }
    if (2 * (this.#count + 1) > this.#index.length) {
      this.#growIndex();
      s = this.#slot();
    }
    if (this.#count === this.#uses.length) this.#growEntries();
    const e = this.#count++;
    this.#ids.set(this.#w, 4 * e);
    this.#uses[e] = n;
    this.#rows[e] = row;
    this.#index[s] = e + 1;
    return true;
  }

  /** Uses recorded for `link` (0 if none). */
  uses(link: string): number {
    if (!this.#anyUses) return 0;
    if (!this.#parse(link)) return this.#other.get(link) ?? 0;
    const e = this.#index[this.#slot()];
    return e !== 0 ? this.#uses[e - 1] : 0;
  }

  /**
   * `[keyLink, uses]` of every key with uses, in slices of at most `size`,
   * in the order keys were first recorded (for keys a job created, the order
   * of their rows in a SQLite store, so updates walk the table in order).
   */
  slices(size: number): Generator<[string, number][]> {
    return this.#slices(size, false) as Generator<[string, number][]>;
  }

  /** `slices` with each key's row hint (0: none) as a third element. */
  slicesWithRows(size: number): Generator<[string, number, number][]> {
    return this.#slices(size, true) as Generator<[string, number, number][]>;
  }

  *#slices(size: number, withRows: boolean): Generator<([string, number] | [string, number, number])[]> {
    let batch: ([string, number] | [string, number, number])[] = [];
    for (let e = 0; e < this.#count; e++) {
      const n = this.#uses[e];
      if (n === 0) continue;
      const link = formatUuid(this.#ids, 4 * e);
      batch.push(withRows ? [link, n, this.#rows[e]] : [link, n]);
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    for (const [link, n] of this.#other) {
      if (n === 0) continue;
      batch.push(withRows ? [link, n, 0] : [link, n]);
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length) yield batch;
  }
}
