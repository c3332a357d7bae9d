/**
 * The SQLite key store for Node (better-sqlite3 12.x): the same file format
 * as the `keylink` CLI's store (`host/src/keystore/sqlite.rs`), so Node jobs
 * and CLI jobs can share one store file and agree on one key per combination.
 * @packageDocumentation
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { KeyStoreError } from '../errors.js';
import type { Cipher, KeyRequest, KeyStore, StoredKey } from '../types.js';

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
  'VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, 0) ON CONFLICT (group_id, key_value_hmac, window) DO NOTHING';
const SELECT_KEY = 'SELECT key_link, key_id, cipher, material, wrapped, uses FROM keys WHERE group_id = ? AND key_value_hmac = ? AND window = ?';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_LEN: Record<Cipher, number> = { 'aes-256-gcm': 32, 'aes-256-siv': 64 };

/** Options of {@link SqliteKeyStore.open}. */
export interface SqliteKeyStoreOptions {
  /**
   * An HMAC secret kept outside the file (32 bytes), as the CLI's
   * `open_with_secret`. Default: the secret stored in the file (created at
   * random with the store).
   */
  secret?: Uint8Array;
}

// Minimal view of better-sqlite3 used here (it is an optional peer dependency).
interface Statement {
  run(...args: unknown[]): { changes: number };
  get(...args: unknown[]): any;
}
interface Database {
  pragma(s: string, o?: { simple?: boolean }): unknown;
  exec(s: string): void;
  prepare(s: string): Statement;
  transaction<F extends (...a: any[]) => any>(f: F): { immediate: F; deferred: F };
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

const hmacOf = (secret: Uint8Array) => (group: string, value: string) =>
  createHmac('sha256', secret).update(group, 'utf8').update(Buffer.from([0])).update(value, 'utf8').digest();

/**
 * A {@link KeyStore} in one SQLite file, in the CLI's format (schema version
 * 1): WAL, `busy_timeout` 30 s, `secure_delete`; every write in one `BEGIN
 * IMMEDIATE` transaction; key-field and subject values only as
 * HMAC-SHA-256(store secret, `group ‖ 0x00 ‖ value`).
 *
 * Key material is stored raw (protect the file like the keys themselves).
 * Stores wrapped with a KEK (`keylink run --kek`) are refused with code
 * `KEK_REQUIRED`: the JS SDK does not implement KEK wrapping.
 */
export class SqliteKeyStore implements KeyStore {
  #db: Database;
  #hmac: (group: string, value: string) => Buffer;

  private constructor(db: Database, secret: Uint8Array) {
    this.#db = db;
    this.#hmac = hmacOf(secret);
  }

  /**
   * Opens (or creates) the store at `path`.
   * @param path - the database file (shared with the CLI's `--key-store sqlite:PATH`)
   * @param options - an external HMAC secret
   * @throws {@link KeyStoreError} `KEK_REQUIRED`, `SECRET_MISMATCH`, `SECRET_REQUIRED`, `UNSUPPORTED_SCHEMA`, `KEY_STORE`
   */
  static open(path: string, options: SqliteKeyStoreOptions = {}): SqliteKeyStore {
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
            ins.run('kek_key_id', '');
            ins.run('kek_fingerprint', '');
          }
          return {
            version: String(getMeta('schema_version') ?? ''),
            secret: getMeta('hmac_secret') as Buffer | undefined,
            check: String(getMeta('hmac_secret_check') ?? ''),
            kek: String(getMeta('kek_key_id') ?? ''),
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
      if (meta.kek !== '') {
        throw new KeyStoreError('KEK_REQUIRED', `this key store wraps key material with a KEK (key id ${meta.kek}); the JS SDK does not support KEKs`);
      }
      return new SqliteKeyStore(db, secret);
    } catch (e) {
      db.close();
      throw e instanceof KeyStoreError ? e : new KeyStoreError('KEY_STORE', `cannot open key store: ${(e as Error).message}`, e);
    }
  }

  /** {@inheritDoc KeyStore.getOrCreate} */
  async getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]> {
    const prepared = requests.map((r) => {
      const p = r.proposal;
      if (p.cipher !== cipher || p.material.length !== KEY_LEN[cipher] || !(p.keyId > 0) || !UUID.test(p.keyLink)) {
        throw new KeyStoreError('INVALID_PROPOSAL', `group ${JSON.stringify(group)}: proposal ${p.keyLink} does not fit ${cipher}`);
      }
      return { kh: this.#hmac(group, r.keyValue), sh: r.subject === null ? null : this.#hmac(group, r.subject) };
    });
    const db = this.#db;
    const now = BigInt(Date.now());
    let rows: (StoredKey | null)[];
    try {
      rows = retryBusy(() =>
        db.transaction(() => {
          db.prepare('INSERT INTO groups (group_id, cipher, created_at_ms) VALUES (?, ?, ?) ON CONFLICT (group_id) DO NOTHING').run(group, cipher, now);
          const stored = db.prepare('SELECT cipher FROM groups WHERE group_id = ?').get(group).cipher as string;
          if (stored !== cipher) {
            throw new KeyStoreError('CIPHER_MISMATCH', `the key store holds ${stored} keys for group ${JSON.stringify(group)}, the job asks for ${cipher}; a group's cipher is fixed at first use`);
          }
          const insert = db.prepare(INSERT_KEY);
          const select = db.prepare(SELECT_KEY);
          return requests.map((r, i) => {
            const k = r.proposal;
            const { kh, sh } = prepared[i];
            const w = BigInt(r.window);
            const inserted = insert.run(group, kh, w, BigInt(r.windowStartMs), k.keyLink, BigInt(k.keyId), cipher, Buffer.from(k.material), sh, now).changes;
            if (inserted === 1) return null;
            const row = select.get(group, kh, w);
            if (row.wrapped) throw new KeyStoreError('KEK_REQUIRED', `key ${row.key_link} is wrapped with a KEK`);
            return { keyLink: row.key_link, keyId: Number(row.key_id), cipher: row.cipher, material: new Uint8Array(row.material), usesBefore: Number(row.uses) };
          });
        }).immediate(),
      );
    } catch (e) {
      if (e instanceof KeyStoreError) throw e;
      if (String((e as { code?: string }).code).startsWith('SQLITE_CONSTRAINT')) {
        throw new KeyStoreError('INVALID_PROPOSAL', "a proposal's key link is already the key link of another key", e);
      }
      throw new KeyStoreError('KEY_STORE', `SQLite: ${(e as Error).message}`, e);
    }
    return rows.map((row, i) => {
      if (row === null) return { ...requests[i].proposal, usesBefore: 0 };
      if (row.cipher !== cipher || row.material.length !== KEY_LEN[cipher]) {
        throw new KeyStoreError('KEY_STORE', `key ${row.keyLink}: stored key is malformed`);
      }
      return row;
    });
  }

  /** {@inheritDoc KeyStore.recordUses} */
  async recordUses(uses: [string, number][]): Promise<void> {
    const db = this.#db;
    retryBusy(() =>
      db.transaction(() => {
        const update = db.prepare(
          'UPDATE keys SET uses = CASE WHEN uses > 9223372036854775807 - @n THEN 9223372036854775807 ELSE uses + @n END WHERE key_link = @link',
        );
        for (const [link, n] of uses) update.run({ n: BigInt(n), link });
      }).immediate(),
    );
  }

  /** Number of keys in the store (all groups). */
  count(): number {
    return Number(this.#db.prepare('SELECT count(*) AS n FROM keys').get().n);
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }
}
