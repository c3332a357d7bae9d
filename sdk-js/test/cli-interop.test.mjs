// Cross-runtime: SDK outputs decrypt with the `keylink decrypt` CLI and with
// Google Tink (Python); SDK and CLI jobs sharing one SQLite store agree on
// one key per (group, key-field value, window), also when the store is
// wrapped with a key-encryption key (KEK) and the keys outputs are Tink
// encrypted keysets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { runBatchJob, SqliteKeyStore } from 'keylink';
import { CLI, ROOT, tmp, vector, clickstreamJob, records, openEncryptedKeyset } from './helpers.mjs';

const run = promisify(execFile);
const PII = ['email', 'customer_id', 'ip_address'];
const env = { ...process.env, MASK_SEED: 'pepper' };
process.env.MASK_SEED = 'pepper';

/** A job file on disk whose source and outputs live in `dir` under `prefix`. */
function jobIn(dir, prefix, encryption) {
  const job = clickstreamJob(encryption);
  job.data_connectors = { d: { local: { root: dir } } };
  job.source_data = { data_connector_ref: { name: 'd' }, file_name: 'events.csv' };
  const t = (name) => ({ target: { data_connector_ref: { name: 'd' }, file_name: `${prefix}-${name}.csv` } });
  job.encrypted_data = t('encrypted');
  job.encryption_keys_data = t('keys');
  job.derived_data.forEach((d, i) => Object.assign(d, t(`derived${i}`)));
  const path = join(dir, `${prefix}-job.json`);
  writeFileSync(path, JSON.stringify(job, null, 2));
  return { job, path, out: (name) => join(dir, `${prefix}-${name}.csv`) };
}

/**
 * A CLI output file. The `keylink` CLI of this branch's base (afffa8a) appends
 * a second copy of the header line at the end of every data output (a host
 * bug, reported); it is cut off here, and only that exact line.
 */

function readText(path) {
  return readFileSync(path, 'utf8');
}

function setup() {
  const dir = tmp();
  writeFileSync(join(dir, 'events.csv'), vector('clickstream_dirty.csv'));
  return dir;
}

for (const [name, encryption, aad] of [
  ['aes-256-gcm, field-name', {}, 'field-name'],
  ['aes-256-gcm, none', { associated_data: 'none' }, 'none'],
  ['aes-256-siv, none', { cipher: 'aes-256-siv' }, 'none'],
  ['aes-256-siv, field-name', { cipher: 'aes-256-siv', associated_data: 'field-name' }, 'field-name'],
]) {
  test(`SDK outputs decrypt with the keylink CLI and with Google Tink (${name})`, async () => {
    const dir = setup();
    const j = jobIn(dir, 'sdk', encryption);
    const store = SqliteKeyStore.open(join(dir, 'keys.db'));
    await runBatchJob(j.path, { keyStore: store });
    store.close();
    const plain = records(vector('clickstream_dirty.csv'));
    // keylink decrypt, with the keys output
    await run(CLI, ['decrypt', '--keys', j.out('keys'), j.out('encrypted'), join(dir, 'dec.csv'), '--overwrite'], { env });
    const dec = records(readFileSync(join(dir, 'dec.csv')));
    assert.equal(dec.length, plain.length);
    for (const [i, r] of dec.entries()) for (const c of PII) assert.equal(r[c], plain[i][c], `row ${i + 1} ${c}`);
    // keylink decrypt, with the shared key store (the SDK wrote the rows the CLI reads)
    await run(CLI, ['decrypt', '--key-store', `sqlite:${join(dir, 'keys.db')}`, j.out('encrypted'), join(dir, 'dec2.csv'), '--overwrite'], { env });
    assert.deepEqual(records(readFileSync(join(dir, 'dec2.csv'))).map((r) => r.email), plain.map((r) => r.email));
    // Google Tink
    const { stdout } = await run('python3', [join(ROOT, 'tests', 'interop', 'tink_decrypt.py'), j.out('keys'), j.out('encrypted'), join(dir, 'events.csv'), PII.join(','), aad]);
    assert.match(stdout, /tink decrypted [1-9]\d* cells/);
  });
}

test('an SDK job and a CLI job of one group share one SQLite store: same key links, same SIV ciphertexts', async () => {
  const dir = setup();
  const db = join(dir, 'shared.db');
  const sdk = jobIn(dir, 'sdk', { cipher: 'aes-256-siv', batch_job_group_id: 'shared-siv' });
  const cli = jobIn(dir, 'cli', { cipher: 'aes-256-siv', batch_job_group_id: 'shared-siv' });
  const store = SqliteKeyStore.open(db);
  const r = await runBatchJob(sdk.path, { keyStore: store });
  assert.ok(r.summary.keysCreated > 0);
  await run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--overwrite'], { env });
  const a = records(readFileSync(sdk.out('encrypted')));
  const b = records(readText(cli.out('encrypted')));
  assert.deepEqual(b.map((x) => x['strmMeta.keyLink']), a.map((x) => x['strmMeta.keyLink']));
  assert.equal(readText(cli.out('encrypted')), readFileSync(sdk.out('encrypted'), 'utf8'), 'deterministic cipher, same keys: same bytes');
  assert.equal(readText(cli.out('derived1')), readFileSync(sdk.out('derived1'), 'utf8'));
  assert.deepEqual(new Set(records(readFileSync(cli.out('keys'))).map((k) => k.encryptionKey)), new Set(records(readFileSync(sdk.out('keys'))).map((k) => k.encryptionKey)));
  // and back: a later SDK job reuses what the CLI's store holds, creating nothing
  const again = await runBatchJob(sdk.path, { keyStore: store, overwrite: true });
  assert.equal(again.summary.keysCreated, 0);
  store.close();
});

test('CLI first on part of the data, then the SDK on all of it: the SDK reuses the CLI keys and creates only the new ones', async () => {
  const dir = setup();
  const db = join(dir, 'shared.db');
  const all = records(vector('clickstream_dirty.csv'));
  // the first 40 records, written back as CSV (fields with newlines stay quoted)
  const q = (v) => `"${v.replaceAll('"', '""')}"`;
  const header = Object.keys(all[0]);
  const part = [header, ...all.slice(0, 40).map((r) => header.map((h) => r[h]))].map((r) => r.map(q).join(',')).join('\r\n') + '\r\n';
  const cliDir = tmp();
  writeFileSync(join(cliDir, 'events.csv'), part);
  const cli = jobIn(cliDir, 'cli', { batch_job_group_id: 'shared-gcm' });
  await run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--overwrite'], { env });
  const cliRows = records(readText(cli.out('encrypted')));
  const sdk = jobIn(dir, 'sdk', { batch_job_group_id: 'shared-gcm' });
  const store = SqliteKeyStore.open(db);
  const r = await runBatchJob(sdk.path, { keyStore: store });
  const sdkRows = records(readFileSync(sdk.out('encrypted')));
  assert.equal(sdkRows.length, all.length);
  for (let i = 0; i < cliRows.length; i++) assert.equal(sdkRows[i]['strmMeta.keyLink'], cliRows[i]['strmMeta.keyLink'], `row ${i + 1}`);
  const cliLinks = new Set(cliRows.map((x) => x['strmMeta.keyLink']));
  const sdkLinks = new Set(sdkRows.map((x) => x['strmMeta.keyLink']));
  assert.equal(r.summary.keysCreated, [...sdkLinks].filter((l) => !cliLinks.has(l)).length);
  assert.equal(store.count(), sdkLinks.size);
  store.close();
});

test('an SDK job and a CLI job running at the same time on one fresh store end with one key per combination', async () => {
  const dir = setup();
  const db = join(dir, 'race.db');
  const sdk = jobIn(dir, 'sdk', { batch_job_group_id: 'race' });
  const cli = jobIn(dir, 'cli', { batch_job_group_id: 'race' });
  const store = SqliteKeyStore.open(db);
  await Promise.all([
    run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--overwrite'], { env }),
    runBatchJob(sdk.path, { keyStore: store, chunkBytes: 2048 }),
  ]);
  const a = records(readFileSync(sdk.out('encrypted'))).map((x) => x['strmMeta.keyLink']);
  const b = records(readText(cli.out('encrypted'))).map((x) => x['strmMeta.keyLink']);
  assert.deepEqual(a, b);
  assert.equal(store.count(), new Set(a).size);
  store.close();
});

/** A KEK made by Google Tink (Python): a JSON keyset with one AES256_GCM key, written to `dir/kek.json`. */
async function tinkKek(dir) {
  const { stdout } = await run('python3', ['-c', [
    'import tink',
    'from tink import aead, secret_key_access',
    'aead.register()',
    'h = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM)',
    'print(tink.json_proto_keyset_format.serialize(h, secret_key_access.TOKEN))',
  ].join('\n')]);
  const json = stdout.trim();
  const path = join(dir, 'kek.json');
  writeFileSync(path, json + '\n');
  const k = JSON.parse(json);
  assert.equal(k.key.length, 1);
  return { json, path, keyId: k.primaryKeyId, material: Buffer.from(k.key[0].keyData.value, 'base64').subarray(2) };
}

/** keyLink → row of a keys output. */
const keysByLink = (path) => new Map(records(readFileSync(path)).map((k) => [k.keyLink, k]));

/** The store's meta and whether every row is wrapped. */
function storeState(db) {
  const d = new Database(db, { readonly: true });
  const meta = Object.fromEntries(d.prepare("SELECT name, value FROM meta WHERE name LIKE 'kek%'").all().map((r) => [r.name, r.value]));
  const { n, w } = d.prepare('SELECT count(*) AS n, sum(wrapped) AS w FROM keys').get();
  d.close();
  return { meta, keys: n, wrapped: w };
}

test('KEK: a CLI job with --kek creates a wrapped store; an SDK job with the same KEK reuses its keys; CLI and Tink decrypt the SDK outputs', async () => {
  const dir = setup();
  const db = join(dir, 'kek.db');
  const kek = await tinkKek(dir);
  const cli = jobIn(dir, 'cli', { batch_job_group_id: 'kek-gcm' });
  const sdk = jobIn(dir, 'sdk', { batch_job_group_id: 'kek-gcm' });
  await run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--kek', `file:${kek.path}`, '--overwrite'], { env });
  const created = storeState(db);
  assert.equal(created.meta.kek_key_id, String(kek.keyId));
  assert.ok(created.keys > 0);
  assert.equal(created.wrapped, created.keys, 'every key wrapped by the CLI');

  const store = SqliteKeyStore.open(db, { kek: `file:${kek.path}` });
  const r = await runBatchJob(sdk.path, { keyStore: store });
  assert.equal(r.summary.keysCreated, 0, 'every key of the CLI job is reused');
  assert.equal(store.count(), created.keys, 'one key link per (value, window)');
  store.close();
  const a = records(readFileSync(cli.out('encrypted'))).map((x) => x['strmMeta.keyLink']);
  const b = records(readFileSync(sdk.out('encrypted'))).map((x) => x['strmMeta.keyLink']);
  assert.deepEqual(b, a);

  // Same keys output format as the CLI's: encrypted keysets, same key links, key info, policy and expiry.
  const cliKeys = keysByLink(cli.out('keys'));
  const sdkKeys = keysByLink(sdk.out('keys'));
  assert.deepEqual([...sdkKeys.keys()].sort(), [...cliKeys.keys()].sort());
  for (const [link, k] of sdkKeys) {
    const c = cliKeys.get(link);
    assert.deepEqual({ ...k, encryptionKey: '' }, { ...c, encryptionKey: '' });
    assert.deepEqual(JSON.parse(k.encryptionKey).keysetInfo, JSON.parse(c.encryptionKey).keysetInfo);
    const mine = openEncryptedKeyset(kek, k.encryptionKey).keyset;
    assert.deepEqual(mine, openEncryptedKeyset(kek, c.encryptionKey).keyset, 'the same Keyset proto inside');
    assert.notEqual(k.encryptionKey, c.encryptionKey, 'fresh nonces');
  }

  const plain = records(vector('clickstream_dirty.csv'));
  const same = (file) => {
    const dec = records(readFileSync(file));
    assert.equal(dec.length, plain.length);
    for (const [i, x] of dec.entries()) for (const col of PII) assert.equal(x[col], plain[i][col], `row ${i + 1} ${col}`);
  };
  // keylink decrypt with the SDK's keys output (needs the KEK) and with the shared store.
  await run(CLI, ['decrypt', '--keys', sdk.out('keys'), '--kek', `file:${kek.path}`, sdk.out('encrypted'), join(dir, 'dec1.csv'), '--overwrite'], { env });
  same(join(dir, 'dec1.csv'));
  await run(CLI, ['decrypt', '--key-store', `sqlite:${db}`, '--kek', `file:${kek.path}`, sdk.out('encrypted'), join(dir, 'dec2.csv'), '--overwrite'], { env });
  same(join(dir, 'dec2.csv'));
  await assert.rejects(run(CLI, ['decrypt', '--key-store', `sqlite:${db}`, sdk.out('encrypted'), join(dir, 'dec3.csv'), '--overwrite'], { env }), /key-encryption key/);
  // Google Tink: each encrypted keyset opened with the KEK as master AEAD, then the data.
  const { stdout } = await run('python3', [join(ROOT, 'tests', 'interop', 'tink_decrypt.py'), sdk.out('keys'), sdk.out('encrypted'), join(dir, 'events.csv'), PII.join(','), 'field-name', '--kek-keyset', kek.path]);
  assert.match(stdout, /tink decrypted [1-9]\d* cells/);
});

test('KEK, the other way round: the SDK creates the wrapped store (KEK from the job file\'s encryption.kek), the CLI with --kek reuses it byte for byte', async () => {
  const dir = setup();
  const db = join(dir, 'kek.db');
  const kek = await tinkKek(dir);
  const kenv = { ...env, KEYLINK_TEST_KEK: kek.json };
  process.env.KEYLINK_TEST_KEK = kek.json;
  const enc = { cipher: 'aes-256-siv', batch_job_group_id: 'kek-siv', kek: 'env:KEYLINK_TEST_KEK' };
  const sdk = jobIn(dir, 'sdk', enc);
  const cli = jobIn(dir, 'cli', enc);
  const store = SqliteKeyStore.open(db, { kek: 'env:KEYLINK_TEST_KEK' });
  const r = await runBatchJob(sdk.path, { keyStore: store });
  assert.ok(r.summary.keysCreated > 0);
  store.close();
  const created = storeState(db);
  assert.deepEqual(created.meta.kek_key_id, String(kek.keyId));
  assert.equal(created.wrapped, created.keys, 'every key wrapped by the SDK');
  assert.equal(created.keys, r.summary.keysCreated);

  // Without the KEK the CLI refuses the store; with it (from the job file's
  // encryption.kek, or --kek as well), it reuses every key.
  const bare = jobIn(dir, 'bare', { cipher: 'aes-256-siv', batch_job_group_id: 'kek-siv' });
  await assert.rejects(run(CLI, ['run', bare.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--overwrite'], { env: kenv }), /key-encryption key \(KEK key id \d+\)/);
  await run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--overwrite'], { env: kenv });
  assert.equal(storeState(db).keys, created.keys, 'the CLI created no key');
  await run(CLI, ['run', cli.path, '--engine', 'native', '--key-store', `sqlite:${db}`, '--kek', 'env:KEYLINK_TEST_KEK', '--overwrite'], { env: kenv });
  assert.equal(storeState(db).keys, created.keys, 'the CLI created no key');
  assert.equal(readFileSync(cli.out('encrypted'), 'utf8'), readFileSync(sdk.out('encrypted'), 'utf8'), 'deterministic cipher, same unwrapped keys: same bytes');
  const cliKeys = keysByLink(cli.out('keys'));
  const sdkKeys = keysByLink(sdk.out('keys'));
  assert.deepEqual([...cliKeys.keys()].sort(), [...sdkKeys.keys()].sort());
  for (const [link, k] of sdkKeys) {
    assert.deepEqual(openEncryptedKeyset(kek, k.encryptionKey, 'aes-256-siv').keyset, openEncryptedKeyset(kek, cliKeys.get(link).encryptionKey, 'aes-256-siv').keyset);
  }
  // The CLI unwraps what the SDK wrapped; Tink opens the SDK's encrypted SIV keysets.
  await run(CLI, ['decrypt', '--key-store', `sqlite:${db}`, '--kek', 'env:KEYLINK_TEST_KEK', sdk.out('encrypted'), join(dir, 'dec.csv'), '--overwrite'], { env: kenv });
  assert.deepEqual(records(readFileSync(join(dir, 'dec.csv'))).map((x) => x.email), records(vector('clickstream_dirty.csv')).map((x) => x.email));
  const { stdout } = await run('python3', [join(ROOT, 'tests', 'interop', 'tink_decrypt.py'), sdk.out('keys'), sdk.out('encrypted'), join(dir, 'events.csv'), PII.join(','), 'none', '--kek-keyset', kek.path]);
  assert.match(stdout, /tink decrypted [1-9]\d* cells/);
  // And back again: the SDK reuses everything.
  const again = SqliteKeyStore.open(db, { kek: kek.json });
  assert.equal((await runBatchJob(sdk.path, { keyStore: again, overwrite: true })).summary.keysCreated, 0);
  again.close();
  delete process.env.KEYLINK_TEST_KEK;
});
