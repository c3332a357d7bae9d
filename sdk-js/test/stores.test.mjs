// Key stores: the IndexedDB store (here over fake-indexeddb; the browser test
// runs it in Chromium) and the SQLite store's file format and refusals, with
// and without a key-encryption key (KEK); a job file's `encryption.kek`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDBFactory } from 'fake-indexeddb';
import Database from 'better-sqlite3';
import { runBatchJob, IndexedDbKeyStore, SqliteKeyStore, MemoryKeyStore, KeyStoreError, Kek } from 'keylink';
import { tmp, vector, clickstreamJob, runCollected, records, kekKeyset, tinkGcmOpen, openEncryptedKeyset } from './helpers.mjs';

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

test('SQLite store: refuses a wrong external secret, and a store whose meta names a KEK when none is given', () => {
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

/** Every way key material of `kek` could show up in a message. */
const leaks = (kek) => [kek.material.toString('hex'), kek.material.toString('base64'), kek.json];
const noLeak = (kek) => (e) => {
  for (const l of leaks(kek)) assert.ok(!e.message.includes(l), `message leaks key material: ${e.message}`);
  return true;
};

test('SQLite store with a KEK: material wrapped at rest in the CLI format, keys output as Tink encrypted keysets, reuse', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const kek = kekKeyset();
  const store = SqliteKeyStore.open(path, { kek: kek.json });
  assert.equal(store.kek.keyId, kek.keyId);
  assert.ok(!JSON.stringify(store.kek).includes(kek.material.toString('base64')) && !String(store.kek).includes(kek.material.toString('hex')));
  const out = await runCollected(runBatchJob, clickstreamJob(), vector('clickstream_dirty.csv'), { keyStore: store, secrets });
  store.close();
  assert.ok(out.result.summary.keysCreated > 0);

  const db = new Database(path);
  const meta = Object.fromEntries(db.prepare('SELECT name, value FROM meta').all().map((r) => [r.name, r.value]));
  assert.equal(meta.kek_key_id, String(kek.keyId));
  assert.equal(meta.kek_fingerprint, createHmac('sha256', kek.material).update('keylink kek fingerprint v1').digest('hex'));
  const rows = db.prepare('SELECT key_link, key_id, material, wrapped FROM keys').all();
  assert.equal(rows.length, out.result.summary.keysCreated);
  const raw = new Map();
  for (const r of rows) {
    assert.equal(r.wrapped, 1);
    // 0x01 ‖ KEK id ‖ nonce ‖ AES-256-GCM(32 bytes) ‖ tag, key link as associated data
    assert.equal(r.material.length, 5 + 12 + 32 + 16);
    const m = tinkGcmOpen(kek, r.material, Buffer.from(r.key_link, 'utf8'));
    assert.equal(m.length, 32);
    assert.ok(!r.material.includes(m), 'the raw material is not in the wrapped form');
    assert.throws(() => tinkGcmOpen(kek, r.material, Buffer.from(rows[0] === r ? rows[1].key_link : rows[0].key_link)), 'bound to its key link');
    raw.set(r.key_link, m);
  }
  assert.equal(new Set(rows.map((r) => r.material.subarray(5, 17).toString('hex'))).size, rows.length, 'a fresh nonce per key');
  db.close();
  const file = readFileSync(path);
  for (const m of [...raw.values(), kek.material]) assert.ok(!file.includes(m), 'no raw key material in the file');

  // The keys output: one encrypted keyset per key, in the CLI's shape; it opens under the KEK and holds the stored key.
  const keys = records(out.keys);
  assert.equal(keys.length, out.result.summary.keysUsed);
  for (const k of keys) {
    const { keyId, keyset } = openEncryptedKeyset(kek, k.encryptionKey);
    assert.equal(keyId, rows.find((r) => r.key_link === k.keyLink).key_id);
    assert.ok(keyset.includes(raw.get(k.keyLink)), 'the encrypted keyset holds the stored key');
    assert.ok(!k.encryptionKey.includes(raw.get(k.keyLink).toString('base64')));
  }
  assert.ok(!out.keys.includes('"key":'), 'no plain keyset in the keys output');

  // Reopened with the KEK (as a Kek, as env:, as file:): every key is reused.
  process.env.KEYLINK_TEST_KEK = kek.json;
  writeFileSync(join(dir, 'kek.json'), kek.json + '\n');
  for (const given of [Kek.fromKeysetJson(kek.json), 'env:KEYLINK_TEST_KEK', `file:${join(dir, 'kek.json')}`, new TextEncoder().encode(kek.json)]) {
    const again = SqliteKeyStore.open(path, { kek: given });
    const o = await runCollected(runBatchJob, clickstreamJob(), vector('clickstream_dirty.csv'), { keyStore: again, secrets });
    again.close();
    assert.equal(o.result.summary.keysCreated, 0);
    assert.deepEqual(records(o.encrypted).map((r) => r['strmMeta.keyLink']), records(out.encrypted).map((r) => r['strmMeta.keyLink']));
  }
  delete process.env.KEYLINK_TEST_KEK;
});

test('SQLite store with a KEK: KEK_REQUIRED, KEK_MISMATCH, KEK_NOT_EXPECTED, UNWRAP (tampered and moved rows), INVALID_KEK; no key material in messages', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const kek = kekKeyset();
  const store = SqliteKeyStore.open(path, { kek: kek.json });
  await runCollected(runBatchJob, clickstreamJob(), vector('clickstream_dirty.csv'), { keyStore: store, secrets });
  store.close();

  assert.throws(() => SqliteKeyStore.open(path), (e) => e instanceof KeyStoreError && e.code === 'KEK_REQUIRED' && e.message.includes(String(kek.keyId)) && noLeak(kek)(e));
  const other = kekKeyset();
  assert.throws(() => SqliteKeyStore.open(path, { kek: other.json }), (e) => e.code === 'KEK_MISMATCH' && noLeak(kek)(e) && noLeak(other)(e));
  const impostor = kekKeyset({ keyId: kek.keyId });
  assert.throws(() => SqliteKeyStore.open(path, { kek: impostor.json }), (e) => e.code === 'KEK_MISMATCH' && noLeak(impostor)(e));
  const raw = join(dir, 'raw.db');
  SqliteKeyStore.open(raw).close();
  assert.throws(() => SqliteKeyStore.open(raw, { kek: kek.json }), (e) => e.code === 'KEK_NOT_EXPECTED' && noLeak(kek)(e));
  SqliteKeyStore.open(raw).close();

  // A tampered wrapped row, then a row moved onto another key link: UNWRAP, naming the key link.
  const db = new Database(path);
  const [a, b] = db.prepare('SELECT key_link, material FROM keys ORDER BY key_link LIMIT 2').all();
  const tampered = Buffer.from(a.material);
  tampered[20] ^= 1;
  db.prepare('UPDATE keys SET material = ? WHERE key_link = ?').run(tampered, a.key_link);
  db.close();
  const unwrapFails = async (link) => {
    const s = SqliteKeyStore.open(path, { kek: kek.json });
    await assert.rejects(runCollected(runBatchJob, clickstreamJob(), vector('clickstream_dirty.csv'), { keyStore: s, secrets }),
      (e) => e instanceof KeyStoreError && e.code === 'UNWRAP' && e.message.includes(link) && noLeak(kek)(e));
    s.close();
  };
  await unwrapFails(a.key_link);
  const db2 = new Database(path);
  db2.prepare('UPDATE keys SET material = ? WHERE key_link = ?').run(a.material, a.key_link);
  db2.prepare('UPDATE keys SET material = ? WHERE key_link = ?').run(a.material, b.key_link);
  db2.close();
  await unwrapFails(b.key_link);

  // What a KEK must be: exactly one enabled AES-256-GCM key with TINK prefix.
  const invalid = (given, why) => assert.throws(() => SqliteKeyStore.open(join(dir, 'never.db'), { kek: given }), (e) => e instanceof KeyStoreError && e.code === 'INVALID_KEK' && why.test(e.message), String(why));
  invalid(kekKeyset({ cipher: 'aes-256-siv', material: Buffer.alloc(64, 7) }).json, /aes-256-gcm key, not aes-256-siv/);
  invalid(kekKeyset({ extra: [77] }).json, /more than one key/);
  invalid(kekKeyset({ material: Buffer.alloc(16, 7) }).json, /only AES-256/);
  invalid('{"key": []}', /no usable key/);
  invalid(`{"primaryKeyId": 1, "key": [${kek.json}`, /not valid JSON/);
  assert.throws(() => SqliteKeyStore.open(join(dir, 'never.db'), { kek: kek.json.slice(0, -3) }), noLeak(kek));
  assert.throws(() => SqliteKeyStore.open(join(dir, 'never.db'), { kek: 'env:KEYLINK_NOT_SET_ANYWHERE' }), (e) => e.code === 'SECRET');
  assert.throws(() => Kek.fromKeysetJson(kek.json.replace('"TINK"', '"RAW"')), (e) => e.code === 'INVALID_KEK');
});

test('a job file with encryption.kek: resolved through `secrets` (any store), the env, or inline; must match the store\'s KEK', async () => {
  const kek = kekKeyset();
  const input = vector('clickstream_dirty.csv');
  const job = clickstreamJob({ kek: 'env:KEYLINK_JOB_KEK' });
  // A memory store (no KEK of its own): the keys output is encrypted under the job's KEK.
  const m = await runCollected(runBatchJob, job, input, { keyStore: new MemoryKeyStore(), secrets: { ...secrets, 'env:KEYLINK_JOB_KEK': kek.json } });
  const keys = records(m.keys);
  assert.equal(keys.length, m.result.summary.keysUsed);
  for (const k of keys) openEncryptedKeyset(kek, k.encryptionKey);
  // Inline in the job file; and from the environment (Node).
  const inline = await runCollected(runBatchJob, clickstreamJob({ kek: kek.json }), input, { secrets });
  for (const k of records(inline.keys)) openEncryptedKeyset(kek, k.encryptionKey);
  process.env.KEYLINK_JOB_KEK = kek.json;
  const fromEnv = await runCollected(runBatchJob, job, input, { secrets });
  for (const k of records(fromEnv.keys)) openEncryptedKeyset(kek, k.encryptionKey);
  delete process.env.KEYLINK_JOB_KEK;

  // Not provided: a final start error (no retries).
  const states = [];
  await assert.rejects(runCollected(runBatchJob, job, input, { secrets, onState: (e) => states.push(e.state), retryBaseDelayMs: 1 }), (e) => e.code === 'SECRET' && e.startError);
  assert.deepEqual(states, ['PENDING', 'ERROR_STARTING']);
  await assert.rejects(runCollected(runBatchJob, job, input, { secrets: { ...secrets, 'env:KEYLINK_JOB_KEK': '{"key":[]}' } }), (e) => e.code === 'INVALID_KEK' && e.startError);

  // With a SQLite store: the same KEK as the store's works, another is refused, a raw store is refused.
  const dir = tmp();
  const withKek = { ...secrets, 'env:KEYLINK_JOB_KEK': kek.json };
  const store = SqliteKeyStore.open(join(dir, 'k.db'), { kek: Kek.fromKeysetJson(kek.json) });
  const ok = await runCollected(runBatchJob, job, input, { keyStore: store, secrets: withKek });
  for (const k of records(ok.keys)) openEncryptedKeyset(kek, k.encryptionKey);
  const other = kekKeyset();
  await assert.rejects(runCollected(runBatchJob, job, input, { keyStore: store, secrets: { ...secrets, 'env:KEYLINK_JOB_KEK': other.json } }),
    (e) => e instanceof KeyStoreError && e.code === 'KEK_MISMATCH' && e.startError && noLeak(other)(e) && noLeak(kek)(e));
  store.close();
  const rawStore = SqliteKeyStore.open(join(dir, 'raw.db'));
  await assert.rejects(runCollected(runBatchJob, job, input, { keyStore: rawStore, secrets: withKek }), (e) => e.code === 'KEK_NOT_EXPECTED' && noLeak(kek)(e));
  assert.equal(rawStore.count(), 0, 'nothing was written');
  rawStore.close();

  // Both quote styles and line ends of the keys output keep their shape.
  for (const csv of [{ quote: 'necessary', line_end: 'lf' }, { quote: 'always', line_end: 'crlf' }]) {
    const j = { ...job, encryption_keys_data: { target: { file_name: 'k.csv', data_type: { csv } } } };
    const plain = await runCollected(runBatchJob, { ...j, encryption: { ...j.encryption, kek: undefined } }, input, { secrets, seed: new Uint8Array(32) });
    const enc = await runCollected(runBatchJob, j, input, { secrets: withKek, seed: new Uint8Array(32) });
    const lines = (t) => t.split(csv.line_end === 'lf' ? '\n' : '\r\n');
    const [pl, el] = [lines(plain.keys), lines(enc.keys)];
    assert.equal(el.length, pl.length);
    assert.equal(el[0], pl[0], 'the header is kept');
    assert.ok(!enc.keys.includes(csv.line_end === 'lf' ? '\r' : '\n\n'));
    const [pk, ek] = [records(plain.keys), records(enc.keys)];
    for (let i = 0; i < pk.length; i++) {
      assert.deepEqual({ ...ek[i], encryptionKey: '' }, { ...pk[i], encryptionKey: '' });
      const { keyset } = openEncryptedKeyset(kek, ek[i].encryptionKey);
      const material = Buffer.from(JSON.parse(pk[i].encryptionKey).key[0].keyData.value, 'base64').subarray(2);
      assert.ok(keyset.includes(material));
      if (csv.quote === 'always') assert.ok(el[i + 1].startsWith(`"${ek[i].keyLink}","{""encryptedKeyset""`));
      else assert.ok(el[i + 1].startsWith(`${ek[i].keyLink},"{""encryptedKeyset""`));
    }
  }
});

test('SQLite store sessions: keys held in one transaction until commit (or a second), plain calls durable at once, a failed call undoes only itself', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const store = SqliteKeyStore.open(path);
  const other = SqliteKeyStore.open(path); // another connection: sees only what is committed
  const req = (value, link) => ({
    keyValue: value,
    window: 20000,
    windowStartMs: 20000 * 86_400_000,
    subject: null,
    proposal: { keyLink: link, keyId: 7, cipher: 'aes-256-gcm', material: new Uint8Array(32).fill(value.length), usesBefore: 0 },
  });
  const link = (n) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  try {
    const session = store.session();
    const [a] = await session.getOrCreate('g', 'aes-256-gcm', [req('a', link(1))]);
    assert.equal(a.keyLink, link(1));
    assert.equal(other.count(), 0, 'held, not yet committed');
    // A key link that is taken: that call fails and its own insert ('b') is undone, the held key stays.
    await assert.rejects(session.getOrCreate('g', 'aes-256-gcm', [req('b', link(2)), req('c', link(1))]), (e) => e.code === 'INVALID_PROPOSAL');
    await session.recordUses([[link(1), 5]]);
    assert.equal(other.count(), 0);
    await session.commit();
    assert.equal(other.count(), 1);
    const [again] = await other.getOrCreate('g', 'aes-256-gcm', [req('a', link(9))]);
    assert.deepEqual([again.keyLink, again.usesBefore], [link(1), 5], 'the key and its uses, committed');
    const [b] = await other.getOrCreate('g', 'aes-256-gcm', [req('b', link(3))]);
    assert.equal(b.keyLink, link(3), "the failed call's insert was undone");
    // A plain call commits at once, what a session holds too.
    await session.getOrCreate('g', 'aes-256-gcm', [req('d', link(4))]);
    await store.getOrCreate('g', 'aes-256-gcm', [req('e', link(5))]);
    assert.equal(other.count(), 4);
    // A held transaction is committed within about a second, even if the job waits.
    await session.getOrCreate('g', 'aes-256-gcm', [req('f', link(6))]);
    assert.equal(other.count(), 4);
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(other.count(), 5);
    await session.commit();
    await session.close();
  } finally {
    store.close();
    other.close();
  }
});


test('SQLite store sessions: uses recorded by the row each key was given with, and by key link where that row no longer holds it', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const store = SqliteKeyStore.open(path);
  const link = (n) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  const packed = (values, first) => ({
    values,
    subjects: values.map(() => null),
    windows: Float64Array.from(values, () => 20000),
    windowStartMs: Float64Array.from(values, () => 20000 * 86_400_000),
    links: values.map((_, i) => link(first + i)),
    keyIds: Uint32Array.from(values, (_, i) => 7 + i),
    material: new Uint8Array(32 * values.length).fill(1),
  });
  const db = new Database(path, { readonly: true });
  const usesOf = (l) => Number(db.prepare('SELECT uses FROM keys WHERE key_link = ?').get(l).uses);
  try {
    const session = store.session();
    const all = (n) => Array.from({ length: n }, (_, i) => i);
    const created = await session.getOrCreatePacked('g', 'aes-256-gcm', packed(['a', 'b', 'c'], 1), all(3));
    // Keys another job created: found by the select, with their rows too.
    const found = await session.getOrCreatePacked('g', 'aes-256-gcm', packed(['a', 'b', 'c', 'd'], 11), all(4));
    assert.deepEqual(found.links, [link(1), link(2), link(3), link(14)]);
    assert.deepEqual(Array.from(found.rows.subarray(0, 3)), Array.from(created.rows));
    assert.ok(Array.from(found.rows).every((r) => Number.isInteger(r) && r > 0));
    assert.equal(new Set(found.rows).size, 4);
    const [ra, rb, rc, rd] = found.rows;
    // Right rows; a row holding another key (as after a VACUUM renumbered them); none.
    await session.recordUsesAt([[link(1), 5, ra], [link(2), 7, rc], [link(3), 11, 0], [link(14), 13, rd]]);
    await session.commit();
    assert.deepEqual([link(1), link(2), link(3), link(14)].map(usesOf), [5, 7, 11, 13]);
    // A row id no key has.
    await session.recordUsesAt([[link(2), 1, rd + 1000]]);
    await session.commit();
    assert.equal(usesOf(link(2)), 8);
    assert.equal(rb > 0, true);
    await session.close();
  } finally {
    db.close();
    store.close();
  }
});
