/**
 * The SQLite key store for Node (better-sqlite3 12.x): the same file format
 * as the `keylink` CLI's store (`host/src/keystore/sqlite.rs`), so Node jobs
 * and CLI jobs can share one store file and agree on one key per combination,
 * with or without a key-encryption key (KEK).
 *
 * With a KEK (a Tink AES-256-GCM key, see {@link Kek}), `meta.kek_key_id` is
 * the KEK's key id in decimal and `meta.kek_fingerprint` the lowercase hex
 * HMAC-SHA-256(key = KEK material, `"keylink kek fingerprint v1"`); every
 * `keys.material` is then `0x01 ‖ KEK key id (4 bytes BE) ‖ nonce (12 random
 * bytes) ‖ AES-256-GCM ciphertext of the raw material ‖ tag (16)` with the
 * key link (UTF-8) as associated data, and `wrapped` is 1. A store is wrapped
 * or raw for its whole life, decided when it is created.
 * @packageDocumentation
 */
import * as nodeCrypto from 'node:crypto';
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { KeyStoreError } from '../errors.js';
import { Kek, kekMaterial } from '../kek.js';
import type { Cipher, KeyRequest, KeyStore, KeyStoreSession, PackedKeys, PackedRequests, StoredKey } from '../types.js';
import { columnsOf, KEY_LEN, keysOfColumns, UUID } from './sqlite-columns.js';

/** The version of the on-disk format this store reads and writes. */
export const SQLITE_SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY NOT NULL, value NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
  group_id      TEXT PRIMARY KEY NOT NULL,
  cipher        TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
  group_id        TEXT NOT NULL,
  key_value_hmac  BLOB NOT NULL,
  window          INTEGER NOT NULL,
  window_start_ms INTEGER NOT NULL,
  key_link        TEXT NOT NULL UNIQUE,
  key_id          INTEGER NOT NULL,
  cipher          TEXT NOT NULL,
  material        BLOB NOT NULL,
  wrapped         INTEGER NOT NULL,
  subject_hmac    BLOB,
  created_at_ms   INTEGER NOT NULL,
  uses            INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (group_id, key_value_hmac, window)
);
CREATE INDEX IF NOT EXISTS keys_by_subject ON keys (group_id, subject_hmac) WHERE subject_hmac IS NOT NULL;
`;

const INSERT_KEY =
  'INSERT INTO keys (group_id, key_value_hmac, window, window_start_ms, key_link, key_id, cipher, material, wrapped, subject_hmac, created_at_ms, uses) ' +
  'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (group_id, key_value_hmac, window) DO NOTHING';
const SELECT_KEY = 'SELECT rowid AS row_id, key_link, key_id, cipher, material, wrapped, uses FROM keys WHERE group_id = ? AND key_value_hmac = ? AND window = ?';

const STATEMENTS = {
  group: 'INSERT INTO groups (group_id, cipher, created_at_ms) VALUES (?, ?, ?) ON CONFLICT (group_id) DO NOTHING',
  groupCipher: 'SELECT cipher FROM groups WHERE group_id = ?',
  insert: INSERT_KEY,
  select: SELECT_KEY,
  uses: 'UPDATE keys SET uses = CASE WHEN uses > 9223372036854775807 - ? THEN 9223372036854775807 ELSE uses + ? END WHERE key_link = ?',
  // By the row id the job was given with the key: no descent into the index
  // of key links (random UUIDs), about a third of the time on large stores.
  // The key link is checked too: a VACUUM may have given rows new ids.
  usesAt: 'UPDATE keys SET uses = CASE WHEN uses > 9223372036854775807 - ? THEN 9223372036854775807 ELSE uses + ? END WHERE rowid = ? AND key_link = ?',
};

/** A write transaction is committed after this long, or this many key requests (as the CLI's store). */
const GROUP_COMMIT_MS = 1000;
const GROUP_COMMIT_REQUESTS = 65_536;


/** Options of {@link SqliteKeyStore.open}. */
export interface SqliteKeyStoreOptions {
  /**
   * An HMAC secret kept outside the file (32 bytes), as the CLI's
   * `open_with_secret`. Default: the secret stored in the file (created at
   * random with the store).
   */
  secret?: Uint8Array;
  /**
   * The key-encryption key, as the CLI's `--kek` takes it: a Tink JSON keyset
   * with exactly one AES-256-GCM key (text or UTF-8 bytes), `env:NAME` (an
   * environment variable holding it), `file:PATH` (a file holding it; trailing
   * newlines are ignored), or a {@link Kek}. A store created with a KEK wraps
   * every key's material with it and must always be opened with it
   * (`KEK_REQUIRED`, `KEK_MISMATCH`); a store created without one refuses one
   * (`KEK_NOT_EXPECTED`). Jobs on a store with a KEK write their keys output
   * as Tink encrypted keysets under it.
   */
  kek?: string | Uint8Array | Kek;
}

/** The KEK of `open`'s options, resolved like the CLI's `--kek`. */
function kekOf(kek: string | Uint8Array | Kek | undefined): Kek | null {
  if (kek === undefined) return null;
  if (kek instanceof Kek) return kek;
  let json: string | Uint8Array = kek;
  if (typeof kek === 'string' && kek.startsWith('env:')) {
    const v = process.env[kek.slice(4)];
    if (v === undefined) throw new KeyStoreError('SECRET', `kek: environment variable ${kek.slice(4)} is not set`);
    json = v;
  } else if (typeof kek === 'string' && kek.startsWith('file:')) {
    let b: Buffer;
    try {
      b = readFileSync(kek.slice(5));
    } catch (e) {
      throw new KeyStoreError('SECRET', `kek: cannot read secret file ${kek.slice(5)}: ${(e as Error).message}`);
    }
    let n = b.length;
    while (n > 0 && (b[n - 1] === 0x0a || b[n - 1] === 0x0d)) n--;
    json = new Uint8Array(b.subarray(0, n));
  }
  return Kek.fromKeysetJson(json);
}

const kekFingerprint = (kek: Kek) => createHmac('sha256', kekMaterial(kek)).update('keylink kek fingerprint v1').digest('hex');

/** `0x01 ‖ KEK key id ‖ nonce ‖ ciphertext ‖ tag` of `material`, bound to `keyLink`. */
function wrap(kek: Kek, material: Uint8Array, keyLink: string, nonce: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', kekMaterial(kek), nonce, { authTagLength: 16 });
  c.setAAD(Buffer.from(keyLink, 'utf8'));
  const prefix = Buffer.from([1, 0, 0, 0, 0]);
  prefix.writeUInt32BE(kek.keyId, 1);
  return Buffer.concat([prefix, nonce, c.update(material), c.final(), c.getAuthTag()]);
}

/** The material of a wrapped key; `UNWRAP` if it does not open under the KEK with this key link. */
function unwrap(kek: Kek, wrapped: Uint8Array, keyLink: string): Uint8Array {
  const fail = () => new KeyStoreError('UNWRAP', `the key material of key link ${keyLink} failed to unwrap under the key-encryption key`);
  const w = Buffer.from(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength);
  if (w.length < 5 + 12 + 16 || w[0] !== 1 || w.readUInt32BE(1) !== kek.keyId) throw fail();
  try {
    const d = createDecipheriv('aes-256-gcm', kekMaterial(kek), w.subarray(5, 17), { authTagLength: 16 });
    d.setAAD(Buffer.from(keyLink, 'utf8'));
    d.setAuthTag(w.subarray(w.length - 16));
    return new Uint8Array(Buffer.concat([d.update(w.subarray(17, w.length - 16)), d.final()]));
  } catch {
    throw fail();
  }
}

// Minimal view of better-sqlite3 used here (it is an optional peer dependency).
interface Statement {
  run(...args: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...args: unknown[]): any;
}
interface Database {
  pragma(s: string, o?: { simple?: boolean }): unknown;
  exec(s: string): void;
  prepare(s: string): Statement;
  transaction<F extends (...a: any[]) => any>(f: F): { immediate: F; deferred: F };
  readonly inTransaction: boolean;
  close(): void;
}

const sleepSync = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/** Runs `f` again while SQLite reports busy at once (WAL recovery, journal switch), like the CLI. */
function retryBusy<T>(f: () => T): T {
  for (let attempt = 0; ; attempt++) {
    try {
      return f();
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      if (!(code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) || attempt >= 50) throw e;
      sleepSync(10 * Math.min(attempt + 1, 10));
    }
  }
}

/**
 * HMAC-SHA-256(secret, `group ‖ 0x00 ‖ value`). With Node's one-shot
 * `crypto.hash` (20.12+), from the pads directly: a third of the time of
 * `createHmac` per value, the same bytes.
 */
function hmacOf(secret: Uint8Array): (group: string, value: string) => Buffer {
  const oneShot = (nodeCrypto as { hash?: (alg: string, data: Uint8Array, enc: 'buffer') => Buffer }).hash;
  if (typeof oneShot !== 'function' || secret.length > 64) {
    return (group, value) => createHmac('sha256', secret).update(group, 'utf8').update(Buffer.from([0])).update(value, 'utf8').digest();
  }
  const ipad = Buffer.alloc(64, 0x36);
  const outer = Buffer.alloc(96, 0x5c);
  for (let i = 0; i < secret.length; i++) {
    ipad[i] ^= secret[i];
    outer[i] ^= secret[i];
  }
  let group: string | undefined;
  let inner = Buffer.alloc(0);
  let prefix = 0;
  return (g, value) => {
    if (g !== group) {
      group = g;
      const head = Buffer.concat([ipad, Buffer.from(g, 'utf8'), Buffer.from([0])]);
      inner = Buffer.alloc(head.length + 256);
      head.copy(inner);
      prefix = head.length;
    }
    const room = inner.length - prefix;
    if (3 * value.length > room) {
      const bigger = Buffer.alloc(prefix + 3 * value.length);
      inner.copy(bigger, 0, 0, prefix);
      inner = bigger;
    }
    const n = inner.write(value, prefix, 'utf8');
    oneShot('sha256', inner.subarray(0, prefix + n), 'buffer').copy(outer, 64);
    return oneShot('sha256', outer, 'buffer');
  };
}

/**
 * A {@link KeyStore} in one SQLite file, in the CLI's format (schema version
 * 1): WAL, `busy_timeout` 30 s, `secure_delete`; every write in one `BEGIN
 * IMMEDIATE` transaction; key-field and subject values only as
 * HMAC-SHA-256(store secret, `group ‖ 0x00 ‖ value`).
 *
 * Without a KEK, key material is stored raw (protect the file like the keys
 * themselves). With a KEK ({@link SqliteKeyStoreOptions.kek}, the CLI's
 * `--kek`), it is wrapped with AES-256-GCM under the KEK, bound to the key
 * link, exactly as the CLI wraps it: a wrapped store created by the CLI opens
 * here with the same KEK and the other way round.
 */
export class SqliteKeyStore implements KeyStore {
  #db: Database;
  #hmac: (group: string, value: string) => Buffer;
  #kek: Kek | null;

  private constructor(db: Database, secret: Uint8Array, kek: Kek | null) {
    this.#db = db;
    this.#hmac = hmacOf(secret);
    this.#kek = kek;
  }

  /**
   * The KEK the store wraps key material with, or `null` for a store that
   * keeps it raw. Jobs on this store write their keys output as Tink
   * encrypted keysets under it (see {@link KeyStore.kek}).
   */
  get kek(): Kek | null {
    return this.#kek;
  }

  /**
   * Opens (or creates) the store at `path`.
   * @param path - the database file (shared with the CLI's `--key-store sqlite:PATH`)
   * @param options - an external HMAC secret; the key-encryption key
   * @throws {@link KeyStoreError} `KEK_REQUIRED`, `KEK_MISMATCH`, `KEK_NOT_EXPECTED`, `INVALID_KEK`, `SECRET`,
   *   `SECRET_MISMATCH`, `SECRET_REQUIRED`, `UNSUPPORTED_SCHEMA`, `KEY_STORE`
   */
  static open(path: string, options: SqliteKeyStoreOptions = {}): SqliteKeyStore {
    const kek = kekOf(options.kek);
    let Sqlite: new (p: string) => Database;
    try {
      Sqlite = createRequire(import.meta.url)('better-sqlite3');
    } catch (e) {
      throw new KeyStoreError('UNSUPPORTED', 'the SQLite key store needs the package better-sqlite3 (12.x): npm install better-sqlite3', e);
    }
    const db = new Sqlite(path);
    try {
      db.pragma('busy_timeout = 30000');
      retryBusy(() => db.pragma('journal_mode = WAL'));
      db.pragma('secure_delete = ON');
      db.pragma('foreign_keys = ON');
      // As the host does: new keys land all over the indexes (HMAC order),
      // so checkpoint per ~40 MB of WAL, not per 1,000 pages (each commit).
      db.pragma('wal_autocheckpoint = 10000');
      // As the host: the hot part of the indexes in SQLite's own cache
      // (16 MiB) rather than read through system calls page by page.
      db.pragma('cache_size = -16384');
      db.pragma('temp_store = MEMORY');
      const external = options.secret;
      if (external && external.length !== 32) throw new KeyStoreError('KEY_STORE', 'an external HMAC secret must be 32 bytes');
      const fresh = randomBytes(32);
      const check = (s: Uint8Array) => createHmac('sha256', s).update('keylink hmac secret check v1').digest('hex');
      const getMeta = (name: string) => db.prepare('SELECT value FROM meta WHERE name = ?').get(name)?.value as string | Buffer | undefined;
      const meta = retryBusy(() =>
        db.transaction(() => {
          db.exec(SCHEMA);
          if (getMeta('schema_version') === undefined) {
            const ins = db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)');
            if (!external) ins.run('hmac_secret', fresh);
            ins.run('schema_version', String(SQLITE_SCHEMA_VERSION));
            ins.run('hmac_secret_check', check(external ?? fresh));
            ins.run('kek_key_id', kek ? String(kek.keyId) : '');
            ins.run('kek_fingerprint', kek ? kekFingerprint(kek) : '');
          }
          return {
            version: String(getMeta('schema_version') ?? ''),
            secret: getMeta('hmac_secret') as Buffer | undefined,
            check: String(getMeta('hmac_secret_check') ?? ''),
            kek: String(getMeta('kek_key_id') ?? ''),
            kekFingerprint: String(getMeta('kek_fingerprint') ?? ''),
          };
        }).immediate(),
      );
      if (meta.version !== String(SQLITE_SCHEMA_VERSION)) {
        throw new KeyStoreError('UNSUPPORTED_SCHEMA', `key store schema version ${meta.version} is not supported (this SDK reads version ${SQLITE_SCHEMA_VERSION})`);
      }
      const secret = external ?? meta.secret;
      if (!secret) throw new KeyStoreError('SECRET_REQUIRED', 'this key store keeps its HMAC secret outside the file: pass `secret`');
      if (secret.length !== 32) throw new KeyStoreError('KEY_STORE', 'meta.hmac_secret is not 32 bytes');
      if (check(secret) !== meta.check) throw new KeyStoreError('SECRET_MISMATCH', 'the HMAC secret does not match this key store');
      if (meta.kek === '') {
        if (kek) {
          throw new KeyStoreError('KEK_NOT_EXPECTED', 'this key store was created without a key-encryption key (its key material is stored unwrapped); open it without a KEK');
        }
      } else {
        const stored = /^\+?\d+$/.test(meta.kek) ? Number(meta.kek) : NaN;
        if (!(stored <= 0xffffffff)) throw new KeyStoreError('KEY_STORE', 'corrupt key store: meta.kek_key_id is not a key id');
        if (!kek) {
          throw new KeyStoreError('KEK_REQUIRED', `the key store's key material is wrapped with a key-encryption key (KEK key id ${stored}); give that KEK to open it`);
        }
        if (kek.keyId !== stored || kekFingerprint(kek) !== meta.kekFingerprint) {
          throw new KeyStoreError('KEK_MISMATCH', `the given key-encryption key (key id ${kek.keyId}) is not the one this key store was created with (key id ${stored})`);
        }
      }
      return new SqliteKeyStore(db, secret, kek);
    } catch (e) {
      db.close();
      throw e instanceof KeyStoreError ? e : new KeyStoreError('KEY_STORE', `cannot open key store: ${(e as Error).message}`, e);
    }
  }

  /** The open write transaction: its id, when it began and the requests it holds. */
  #txn: { id: number; began: number; requests: number; timer: ReturnType<typeof setTimeout> } | null = null;
  #txnSeq = 0;
  /** Transactions rolled back after they gave keys (a session that holds one must fail). */
  #lost = new Set<number>();

  /** Opens the write transaction unless one is open; its id. */
  #begin(): number {
    if (this.#txn) return this.#txn.id;
    const db = this.#db;
    try {
      retryBusy(() => db.exec('BEGIN IMMEDIATE'));
    } catch (e) {
      throw new KeyStoreError('KEY_STORE', `SQLite: ${(e as Error).message}`, e);
    }
    const id = ++this.#txnSeq;
    // Never held longer than about a second, even when the job waits (other
    // writers wait for the lock meanwhile).
    const timer = setTimeout(() => {
      if (this.#txn?.id === id) {
        try {
          this.#commit();
        } catch {
          // Recorded in #lost: the sessions that hold it fail at their commit.
        }
      }
    }, GROUP_COMMIT_MS);
    (timer as { unref?: () => void }).unref?.();
    this.#txn = { id, began: Date.now(), requests: 0, timer };
    return id;
  }

  /** Commits the open transaction (if any); a failed commit loses it. */
  #commit(): void {
    const t = this.#txn;
    if (!t) return;
    this.#txn = null;
    clearTimeout(t.timer);
    try {
      retryBusy(() => this.#db.exec('COMMIT'));
    } catch (e) {
      this.#lose(t.id);
      throw new KeyStoreError('KEY_STORE', `SQLite: ${(e as Error).message}`, e);
    }
  }

  /** Records transaction `id` as lost and rolls it back if SQLite has not. */
  #lose(id: number): void {
    this.#lost.add(id);
    if (this.#txn?.id === id) {
      clearTimeout(this.#txn.timer);
      this.#txn = null;
    }
    try {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
    } catch {
      // Nothing more to undo.
    }
  }

  /**
   * Runs `f` in the open write transaction, in a savepoint: a failure undoes
   * only `f`'s writes, unless SQLite rolled back the whole transaction.
   * `requests` count towards the group commit; `hold`: leave it open for
   * more (up to a second or 65,536 requests) instead of committing now.
   */
  #write<T>(requests: number, hold: boolean, f: () => T): { value: T; txn: number } {
    const id = this.#begin();
    const db = this.#db;
    let value: T;
    try {
      db.exec('SAVEPOINT keylink_call');
      value = f();
      db.exec('RELEASE keylink_call');
    } catch (e) {
      if (db.inTransaction) {
        try {
          db.exec('ROLLBACK TO keylink_call');
          db.exec('RELEASE keylink_call');
        } catch {
          this.#lose(id);
        }
      } else {
        this.#lose(id);
      }
      if (e instanceof KeyStoreError) throw e;
      if (String((e as { code?: string }).code).startsWith('SQLITE_CONSTRAINT')) {
        throw new KeyStoreError('INVALID_PROPOSAL', "a proposal's key link is already the key link of another key", e);
      }
      throw new KeyStoreError('KEY_STORE', `SQLite: ${(e as Error).message}`, e);
    }
    const t = this.#txn!;
    t.requests += requests;
    if (!hold || t.requests >= GROUP_COMMIT_REQUESTS || Date.now() - t.began >= GROUP_COMMIT_MS) this.#commit();
    return { value, txn: id };
  }

  /** Throws if one of `txns` was lost. */
  #check(txns: Set<number>): void {
    for (const id of txns) {
      if (this.#lost.has(id)) {
        throw new KeyStoreError('KEY_STORE', 'the key store rolled back a transaction that held keys this job was given; the job must not publish data encrypted with them');
      }
    }
  }

  /** {@inheritDoc KeyStore.getOrCreate} */
  async getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]> {
    return keysOfColumns(this.#getOrCreate(group, cipher, columnsOf(group, cipher, requests), null, false).keys, cipher);
  }

  /**
   * {@inheritDoc KeyStore.session}
   *
   * A session's keys and uses are written in one open transaction, committed
   * at the latest a second after it began, after 65,536 requests, or by the
   * session's `commit` (as the CLI's store).
   */
  session(): KeyStoreSession {
    const held = new Set<number>();
    const commit = async () => {
      this.#check(held);
      if (this.#txn && held.has(this.#txn.id)) this.#commit();
      this.#check(held);
      held.clear();
    };
    // With or without the row ids of `getOrCreatePacked`'s answers.
    const recordUses = async (uses: ([string, number] | [string, number, number])[]) => {
      held.add(this.#recordUses(uses, true));
    };
    return {
      getOrCreate: async (group, cipher, requests) => {
        const { keys, txn } = this.#getOrCreate(group, cipher, columnsOf(group, cipher, requests), null, true);
        held.add(txn);
        return keysOfColumns(keys, cipher);
      },
      getOrCreatePacked: async (group, cipher, requests, pick) => {
        const { keys, txn } = this.#getOrCreate(group, cipher, requests, pick, true);
        held.add(txn);
        return keys;
      },
      recordUses,
      recordUsesAt: recordUses,
      commit,
      close: async () => {
        await commit().catch(() => {});
      },
    };
  }

  /** Get-or-create of the requests `pick` names (all if null), in columns. */
  #getOrCreate(group: string, cipher: Cipher, c: PackedRequests, pick: ArrayLike<number> | null, hold: boolean): { keys: PackedKeys; txn: number } {
    const len = KEY_LEN[cipher];
    if (!len) throw new KeyStoreError('INVALID_PROPOSAL', `unknown cipher ${JSON.stringify(cipher)}`);
    const n = pick ? pick.length : c.windows.length;
    const at = (j: number) => (pick ? pick[j] : j);
    const kh: Buffer[] = new Array(n);
    const sh: (Buffer | null)[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const i = at(j);
      const link = c.links[i];
      if (!(c.keyIds[i] > 0) || typeof link !== 'string' || !UUID.test(link) || c.material.length < (i + 1) * len) {
        throw new KeyStoreError('INVALID_PROPOSAL', `group ${JSON.stringify(group)}: proposal ${link} does not fit ${cipher}`);
      }
      kh[j] = this.#hmac(group, c.values[i]);
      const subject = c.subjects[i];
      sh[j] = subject === null || subject === undefined ? null : this.#hmac(group, subject);
    }
    // Wrapping happens before the lock is taken, as the CLI does; one call
    // to the OS for every nonce of the batch.
    const kek = this.#kek;
    const nonces = kek ? randomBytes(12 * n) : null;
    const proposal = (i: number) => Buffer.from(c.material.buffer, c.material.byteOffset + i * len, len);
    const materials: Buffer[] = new Array(n);
    for (let j = 0; j < n; j++) {
      const i = at(j);
      // SQLite copies what is bound; a view is enough without a KEK.
      materials[j] = kek ? wrap(kek, proposal(i), c.links[i], nonces!.subarray(12 * j, 12 * j + 12)) : proposal(i);
    }
    const wrapped = kek ? 1 : 0;
    const now = Date.now();
    type Row = { row_id: number | bigint; key_link: string; key_id: number | bigint; cipher: string; material: Buffer; wrapped: number | bigint; uses: number | bigint };
    const rowIds = new Float64Array(n);
    const { value: rows, txn } = this.#write(n, hold, () => {
      this.#statement('group').run(group, cipher, now);
      const stored = this.#statement('groupCipher').get(group).cipher as string;
      if (stored !== cipher) {
        throw new KeyStoreError('CIPHER_MISMATCH', `the key store holds ${stored} keys for group ${JSON.stringify(group)}, the job asks for ${cipher}; a group's cipher is fixed at first use`);
      }
      const insert = this.#statement('insert');
      const select = this.#statement('select');
      // In primary-key order, as the host: consecutive inserts walk
      // neighbouring pages (HMACs arrive in random order).
      // (By the HMAC's first 48 bits: a number compare; ties, rare, by all of it.)
      const lead = new Float64Array(n);
      for (let j = 0; j < n; j++) lead[j] = kh[j].readUIntBE(0, 6);
      const order = Array.from({ length: n }, (_, j) => j);
      order.sort((a, b) => lead[a] - lead[b] || Buffer.compare(kh[a], kh[b]) || c.windows[at(a)] - c.windows[at(b)]);
      const rows: (Row | null)[] = new Array(n).fill(null);
      for (const j of order) {
        const i = at(j);
        // Numbers bind as SQLite integers (all of these are well below 2^53).
        const w = c.windows[i];
        const inserted = insert.run(group, kh[j], w, c.windowStartMs[i], c.links[i], c.keyIds[i], cipher, materials[j], wrapped, sh[j], now);
        if (inserted.changes === 1) {
          rowIds[j] = Number(inserted.lastInsertRowid);
        } else {
          // Another job (or an earlier request of this batch) got there
          // first: its key, decoded (unwrapped) after the lock.
          const row = select.get(group, kh[j], w) as Row;
          rows[j] = row;
          rowIds[j] = Number(row.row_id);
        }
      }
      return rows;
    });
    const keys: PackedKeys = { links: new Array(n), keyIds: new Uint32Array(n), material: new Uint8Array(n * len), usesBefore: new Float64Array(n), rows: rowIds };
    for (let j = 0; j < n; j++) {
      const row = rows[j];
      if (row === null) {
        const i = at(j);
        keys.links[j] = c.links[i];
        keys.keyIds[j] = c.keyIds[i];
        keys.material.set(c.material.subarray(i * len, (i + 1) * len), j * len);
        continue;
      }
      const keyLink = row.key_link;
      let material: Uint8Array;
      if (Number(row.wrapped)) {
        // `open` refuses a wrapped store without a KEK; a wrapped row in a
        // raw store was written by something else.
        if (!kek) throw new KeyStoreError('KEY_STORE', `corrupt key store: key ${keyLink}: wrapped key material in a store opened without a KEK`);
        material = unwrap(kek, row.material, keyLink);
      } else {
        material = row.material;
      }
      const keyId = Number(row.key_id);
      if (row.cipher !== cipher || material.length !== len || !(keyId > 0 && keyId <= 0xffffffff)) {
        throw new KeyStoreError('KEY_STORE', `key ${keyLink}: stored key is malformed`);
      }
      keys.links[j] = keyLink;
      keys.keyIds[j] = keyId;
      keys.material.set(material, j * len);
      keys.usesBefore[j] = Number(row.uses);
      material.fill(0);
    }
    return { keys, txn };
  }

  /** {@inheritDoc KeyStore.recordUses} */
  async recordUses(uses: [string, number][]): Promise<void> {
    this.#recordUses(uses, false);
  }

  /** Adds uses, by key link, or by row id and key link where a row id is given (see `usesAt`). */
  #recordUses(uses: ([string, number] | [string, number, number])[], hold: boolean): number {
    return this.#write(0, hold, () => {
      const update = this.#statement('uses');
      const updateAt = this.#statement('usesAt');
      for (const [link, n, row] of uses) {
        const b = BigInt(n);
        if (!(row && updateAt.run(b, b, row, link).changes === 1)) update.run(b, b, link);
      }
    }).txn;
  }

  #statements = new Map<string, Statement>();
  /** A prepared statement, prepared once. */
  #statement(name: keyof typeof STATEMENTS): Statement {
    let st = this.#statements.get(name);
    if (!st) this.#statements.set(name, (st = this.#db.prepare(STATEMENTS[name])));
    return st;
  }

  /** Number of keys in the store (all groups). */
  count(): number {
    return Number(this.#db.prepare('SELECT count(*) AS n FROM keys').get().n);
  }

  /** Commits what is pending and closes the database. */
  close(): void {
    try {
      this.#commit();
    } finally {
      this.#db.close();
    }
  }
}
