/**
 * Key requests and keys in columns and as objects, for the SQLite key store
 * (which works in columns: no object per key on the job's hot path).
 * @packageDocumentation
 */
import { KeyStoreError } from '../errors.js';
import type { Cipher, KeyRequest, PackedKeys, PackedRequests, StoredKey } from '../types.js';

/** @internal */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** @internal */
export const KEY_LEN: Record<Cipher, number> = { 'aes-256-gcm': 32, 'aes-256-siv': 64 };

/** @internal Requests as objects, in columns (proposals checked). */
export function columnsOf(group: string, cipher: Cipher, requests: KeyRequest[]): PackedRequests {
  const len = KEY_LEN[cipher];
  const n = requests.length;
  const c: PackedRequests = {
    values: new Array(n),
    subjects: new Array(n),
    windows: new Float64Array(n),
    windowStartMs: new Float64Array(n),
    links: new Array(n),
    keyIds: new Uint32Array(n),
    material: new Uint8Array(n * (len ?? 0)),
  };
  requests.forEach((r, i) => {
    const p = r.proposal;
    if (!len || p.cipher !== cipher || p.material?.length !== len || !(p.keyId > 0 && p.keyId <= 0xffffffff) || typeof p.keyLink !== 'string' || !UUID.test(p.keyLink)) {
      throw new KeyStoreError('INVALID_PROPOSAL', `group ${JSON.stringify(group)}: proposal ${p.keyLink} does not fit ${cipher}`);
    }
    c.values[i] = r.keyValue;
    c.subjects[i] = r.subject;
    c.windows[i] = r.window;
    c.windowStartMs[i] = r.windowStartMs;
    c.links[i] = p.keyLink;
    c.keyIds[i] = p.keyId;
    c.material.set(p.material, i * len);
  });
  return c;
}

/** @internal Keys in columns, as objects (the columns' material zeroed). */
export function keysOfColumns(k: PackedKeys, cipher: Cipher): StoredKey[] {
  const len = KEY_LEN[cipher];
  const keys = k.links.map((keyLink, i) => ({ keyLink, keyId: k.keyIds[i], cipher, material: k.material.slice(i * len, (i + 1) * len), usesBefore: k.usesBefore[i] }));
  k.material.fill(0);
  return keys;
}
