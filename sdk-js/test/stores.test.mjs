// Key stores: the IndexedDB store (here over fake-indexeddb; the browser test
// runs it in Chromium) and the SQLite store's file format and refusals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { IDBFactory } from 'fake-indexeddb';
import Database from 'better-sqlite3';
import { runBatchJob, IndexedDbKeyStore, SqliteKeyStore, KeyStoreError } from 'keylink';
import { tmp, vector, clickstreamJob, runCollected, records } from './helpers.mjs';

const secrets = { 'env:MASK_SEED': 'p' };

test('IndexedDB store: keys persist across connections, concurrent jobs agree, a cipher is fixed per group', async () => {
  const indexedDB = new IDBFactory();
  const a = await IndexedDbKeyStore.open({ indexedDB });
  const b = await IndexedDbKeyStore.open({ indexedDB });
  const input = vector('clickstream_dirty.csv');
  const [x, y] = await Promise.all([
    runCollected(runBatchJob, clickstreamJob(), input, { keyStore: a, secrets, chunkBytes: 1500 }),
    runCollected(runBatchJob, clickstreamJob(), input, { keyStore: b, secrets, chunkBytes: 1100 }),
  ]);
  const links = (o) => records(o.encrypted).map((r) => r['strmMeta.keyLink']);
  assert.deepEqual(links(x), links(y));
  assert.equal(x.result.summary.keysCreated + y.result.summary.keysCreated, new Set(links(x)).size);
  assert.equal(await a.count(), new Set(links(x)).size);
  a.close();
  b.close();
  const c = await IndexedDbKeyStore.open({ indexedDB });
  const z = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: c, secrets });
  assert.equal(z.result.summary.keysCreated, 0);
  assert.deepEqual(links(z), links(x));
  await assert.rejects(runCollected(runBatchJob, clickstreamJob({ cipher: 'aes-256-siv' }), input, { keyStore: c, secrets }), (e) => e instanceof KeyStoreError && e.code === 'CIPHER_MISMATCH');
  c.close();
});

test('SQLite store: the CLI format (meta, HMAC of group ‖ 0 ‖ value, raw material, WAL, usage counts)', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const store = SqliteKeyStore.open(path);
  const job = clickstreamJob();
  const out = await runCollected(runBatchJob, job, vector('clickstream_dirty.csv'), { keyStore: store, secrets });
  store.close();
  const db = new Database(path, { readonly: true });
  const meta = Object.fromEntries(db.prepare('SELECT name, value FROM meta').all().map((r) => [r.name, r.value]));
  assert.equal(meta.schema_version, '1');
  assert.equal(meta.kek_key_id, '');
  assert.equal(meta.hmac_secret.length, 32);
  assert.equal(meta.hmac_secret_check, createHmac('sha256', meta.hmac_secret).update('keylink hmac secret check v1').digest('hex'));
  assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  assert.deepEqual(db.prepare('SELECT group_id, cipher FROM groups').all().map((r) => [r.group_id, r.cipher]), [['g1', 'aes-256-gcm']]);
  const first = records(vector('clickstream_dirty.csv'))[0];
  const enc0 = records(out.encrypted)[0];
  const h = createHmac('sha256', meta.hmac_secret).update('g1').update(Buffer.from([0])).update(first.session_id).digest();
  const row = db.prepare('SELECT * FROM keys WHERE key_link = ?').get(enc0['strmMeta.keyLink']);
  assert.deepEqual(row.key_value_hmac, h);
  assert.deepEqual(row.subject_hmac, createHmac('sha256', meta.hmac_secret).update('g1').update(Buffer.from([0])).update(first.customer_id).digest());
  assert.equal(row.wrapped, 0);
  assert.equal(row.material.length, 32);
  assert.equal(row.window_start_ms, row.window * 86_400_000);
  const keyset = JSON.parse(records(out.keys).find((k) => k.keyLink === row.key_link).encryptionKey);
  assert.equal(keyset.primaryKeyId, row.key_id);
  assert.equal(Buffer.from(keyset.key[0].keyData.value, 'base64').subarray(-32).toString('hex'), row.material.toString('hex'));
  const uses = db.prepare('SELECT sum(uses) AS n FROM keys').get().n;
  assert.equal(uses, out.result.summary.valuesEncrypted);
  const dump = Buffer.concat(db.prepare('SELECT * FROM keys').all().map((r) => Buffer.from(JSON.stringify(r))));
  assert.ok(!dump.includes(first.session_id) && !dump.includes(first.customer_id), 'no PII in the store');
  db.close();
});

test('SQLite store: refuses a wrong external secret and a store wrapped with a KEK', () => {
  const dir = tmp();
  const secret = new Uint8Array(32).fill(1);
  SqliteKeyStore.open(join(dir, 'ext.db'), { secret }).close();
  SqliteKeyStore.open(join(dir, 'ext.db'), { secret }).close();
  assert.throws(() => SqliteKeyStore.open(join(dir, 'ext.db'), { secret: new Uint8Array(32).fill(2) }), (e) => e.code === 'SECRET_MISMATCH');
  assert.throws(() => SqliteKeyStore.open(join(dir, 'ext.db')), (e) => e.code === 'SECRET_REQUIRED');
  SqliteKeyStore.open(join(dir, 'kek.db')).close();
  const db = new Database(join(dir, 'kek.db'));
  db.prepare("UPDATE meta SET value = '12345' WHERE name = 'kek_key_id'").run();
  db.close();
  assert.throws(() => SqliteKeyStore.open(join(dir, 'kek.db')), (e) => e instanceof KeyStoreError && e.code === 'KEK_REQUIRED');
});
