/**
 * A key store in IndexedDB (browsers, and any runtime with `indexedDB`).
 * @packageDocumentation
 */
import { KeyStoreError } from '../errors.js';
import type { Cipher, KeyRequest, KeyStore, StoredKey } from '../types.js';

/** Options of {@link IndexedDbKeyStore.open}. */
export interface IndexedDbKeyStoreOptions {
  /** Database name (default `keylink-keys`). */
  name?: string;
  /** The `IDBFactory` (default `globalThis.indexedDB`). */
  indexedDB?: IDBFactory;
}

interface KeyRow {
  id: string;
  group: string;
  keyValueHmac: string;
  window: number;
  windowStartMs: number;
  keyLink: string;
  keyId: number;
  cipher: Cipher;
  material: Uint8Array;
  subjectHmac: string | null;
  createdAtMs: number;
  uses: number;
}

const req = <T>(r: IDBRequest<T>) =>
  new Promise<T>((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

const hex = (b: ArrayBuffer) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');

/**
 * A {@link KeyStore} in an IndexedDB database, shared by every tab of an
 * origin. Key-field and subject values are kept only as HMAC-SHA-256 (under
 * a random 32-byte secret of the database, over `group ‖ 0x00 ‖ value`, as
 * the SQLite store does); key material is stored raw, so the database is as
 * sensitive as the keys. `getOrCreate` runs in one `readwrite` transaction
 * (IndexedDB serialises them), so concurrent tabs agree on one key.
 */
export class IndexedDbKeyStore implements KeyStore {
  #db: IDBDatabase;
  #secret: CryptoKey;

  private constructor(db: IDBDatabase, secret: CryptoKey) {
    this.#db = db;
    this.#secret = secret;
  }

  /**
   * Opens (or creates) the store.
   * @param options - database name and factory
   */
  static async open(options: IndexedDbKeyStoreOptions = {}): Promise<IndexedDbKeyStore> {
    const factory = options.indexedDB ?? globalThis.indexedDB;
    if (!factory) throw new KeyStoreError('UNSUPPORTED', 'IndexedDB is not available here');
    const open = factory.open(options.name ?? 'keylink-keys', 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      db.createObjectStore('meta');
      db.createObjectStore('groups');
      const keys = db.createObjectStore('keys', { keyPath: 'id' });
      keys.createIndex('keyLink', 'keyLink', { unique: true });
      keys.createIndex('subject', ['group', 'subjectHmac']);
    };
    const db = await req(open);
    // The secret: created once, in one transaction (a racing tab's add fails, then we read theirs).
    let raw: Uint8Array | undefined = await req(db.transaction('meta').objectStore('meta').get('hmac_secret'));
    if (!raw) {
      const fresh = crypto.getRandomValues(new Uint8Array(32));
      try {
        await req(db.transaction('meta', 'readwrite').objectStore('meta').add(fresh, 'hmac_secret'));
      } catch {
        // Another tab created it first.
      }
      raw = await req(db.transaction('meta').objectStore('meta').get('hmac_secret'));
    }
    const secret = await crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    return new IndexedDbKeyStore(db, secret);
  }

  async #hmac(group: string, value: string): Promise<string> {
    const g = new TextEncoder().encode(group);
    const v = new TextEncoder().encode(value);
    const msg = new Uint8Array(g.length + 1 + v.length);
    msg.set(g);
    msg.set(v, g.length + 1);
    return hex(await crypto.subtle.sign('HMAC', this.#secret, msg));
  }

  /** {@inheritDoc KeyStore.getOrCreate} */
  async getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]> {
    // Hash first: a transaction commits as soon as it waits on anything but IndexedDB.
    const hashes = await Promise.all(
      requests.map(async (r) => [await this.#hmac(group, r.keyValue), r.subject === null ? null : await this.#hmac(group, r.subject)] as const),
    );
    const tx = this.#db.transaction(['groups', 'keys'], 'readwrite');
    const groups = tx.objectStore('groups');
    const keys = tx.objectStore('keys');
    const done = new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new KeyStoreError('KEY_STORE', 'transaction aborted'));
    });
    const out: StoredKey[] = new Array(requests.length);
    let mismatch: string | undefined;
    const now = Date.now();
    groups.get(group).onsuccess = (ev) => {
      const stored = (ev.target as IDBRequest<{ cipher: Cipher } | undefined>).result;
      if (stored && stored.cipher !== cipher) {
        mismatch = stored.cipher;
        tx.abort();
        return;
      }
      if (!stored) groups.put({ cipher, createdAtMs: now }, group);
      requests.forEach((r, i) => {
        const [kh, sh] = hashes[i];
        const id = `${group}\u0000${kh}\u0000${r.window}`;
        keys.get(id).onsuccess = (e) => {
          const row = (e.target as IDBRequest<KeyRow | undefined>).result;
          if (row) {
            out[i] = { keyLink: row.keyLink, keyId: row.keyId, cipher: row.cipher, material: row.material, usesBefore: row.uses };
            return;
          }
          const p = r.proposal;
          const fresh: KeyRow = {
            id, group, keyValueHmac: kh, window: r.window, windowStartMs: r.windowStartMs, keyLink: p.keyLink,
            keyId: p.keyId, cipher: p.cipher, material: p.material, subjectHmac: sh, createdAtMs: now, uses: 0,
          };
          keys.add(fresh);
          out[i] = { ...p, usesBefore: 0 };
        };
      });
    };
    try {
      await done;
    } catch (e) {
      if (mismatch) throw new KeyStoreError('CIPHER_MISMATCH', `group ${JSON.stringify(group)} uses ${mismatch}, the job asks for ${cipher}`);
      throw new KeyStoreError('KEY_STORE', `IndexedDB: ${(e as Error)?.message ?? e}`, e);
    }
    return out;
  }

  /** {@inheritDoc KeyStore.recordUses} */
  async recordUses(uses: [string, number][]): Promise<void> {
    const tx = this.#db.transaction('keys', 'readwrite');
    const idx = tx.objectStore('keys').index('keyLink');
    for (const [link, n] of uses) {
      const c = idx.openCursor(link);
      c.onsuccess = () => {
        const cur = c.result;
        if (cur) cur.update({ ...(cur.value as KeyRow), uses: (cur.value as KeyRow).uses + n });
      };
    }
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  /** Number of keys held. */
  async count(): Promise<number> {
    return req(this.#db.transaction('keys').objectStore('keys').count());
  }

  /** Closes the database connection. */
  close(): void {
    this.#db.close();
  }
}
