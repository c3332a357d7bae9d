// The shared vectors of tests/vectors/ (also read by the Rust tests) and the
// compatibility vectors of SPEC section 9, through the Node entry point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { runBatchJob, describeJob, initKeylinkNode, MemoryKeyStore, JobFileError } from 'keylink';
import { VECTORS, vector, vectorJob, records, clickstreamJob, runCollected } from './helpers.mjs';

await initKeylinkNode();
const SEED = new Uint8Array(32).fill(7);

test('every job file of tests/vectors/jobs validates, both spellings describe the same job', () => {
  const names = readdirSync(join(VECTORS, 'jobs')).filter((n) => n.endsWith('.json'));
  assert.ok(names.length >= 5);
  for (const n of names) {
    const d = describeJob(vectorJob(n));
    assert.equal(typeof d.cipher, 'string', n);
  }
  assert.deepEqual(describeJob(vectorJob('spec_example_camel.json')), describeJob(vectorJob('spec_example.json')));
  const d = describeJob(vectorJob('spec_example.json'));
  assert.equal(d.groupId, 'clickstream-2026');
  assert.deepEqual(d.secrets, ['env:MASK_SEED']);
  assert.deepEqual(d.derived.map((x) => x.path), ['events/analytics.csv']);
  const siv = describeJob(vectorJob('siv_murmur3.json'));
  assert.equal(siv.cipher, 'aes-256-siv');
  assert.equal(siv.associatedData, 'none');
  assert.deepEqual(siv.derived.map((x) => x.path), ['out/demo-derived-1.csv', 'out/demo-derived-2.csv']);
});

test('an invalid job file reports every problem with its JSON path', () => {
  const job = vectorJob('minimal.json');
  job.encryption.cipher = 'aes-128';
  job.surprise = 1;
  job.derived_data = [{ consent_levels: [] }];
  assert.throws(() => describeJob(job), (e) => {
    assert.ok(e instanceof JobFileError);
    assert.equal(e.code, 'INVALID_CONFIG');
    const paths = e.problems.map((p) => p.path);
    for (const p of ['$.surprise', 'encryption.cipher', 'derived_data[0].consent_levels']) {
      assert.ok(paths.some((x) => x.endsWith(p.replace('$.', ''))), `${p} in ${paths}`);
    }
    return true;
  });
});

test('clickstream_dirty.csv: every row written, metadata columns, consent filters', async () => {
  const input = vector('clickstream_dirty.csv');
  const out = await runCollected(runBatchJob, clickstreamJob(), input, { secrets: { 'env:MASK_SEED': 'pepper' } });
  const plain = records(input);
  const enc = records(out.encrypted);
  assert.equal(enc.length, plain.length);
  assert.equal(out.result.summary.rowsWritten, plain.length);
  for (const [i, r] of enc.entries()) {
    assert.equal(r['strmMeta.eventContractRef'], 'acme/clickstream/1.0.0');
    assert.match(r['strmMeta.keyLink'], /^[0-9a-f-]{36}$/);
    assert.equal(r.page, plain[i].page);
    if (plain[i].email) assert.notEqual(r.email, plain[i].email);
    else assert.equal(r.email, '');
  }
  const keys = records(out.keys);
  assert.equal(keys.length, out.result.summary.keysUsed);
  assert.deepEqual(new Set(enc.map((r) => r['strmMeta.keyLink'])), new Set(keys.map((k) => k.keyLink)));
  const analytics = records(out.derived[0]);
  assert.equal(analytics.length, out.result.summary.derivedRows[0]);
  for (const r of analytics) {
    assert.ok(JSON.parse(r['strmMeta.consentLevels']).includes(1));
    assert.match(r.customer_id, /^([0-9a-f]{64})?$/); // masked
  }
});

test('outputs are byte-identical for any chunking of the input (fixed seed)', async () => {
  const input = vector('clickstream_dirty.csv');
  const runs = [];
  // the source itself is split into pieces of n bytes, pushed as they come (chunkBytes 1)
  async function* pieces(n) {
    for (let i = 0; i < input.length; i += n) yield input.subarray(i, i + n);
  }
  for (const n of [1, 997, input.length]) {
    // One engine job (parallel ones have their own nonce streams).
    runs.push(await runCollected(runBatchJob, clickstreamJob(), pieces(n), { seed: SEED, chunkBytes: 1, workers: 1, secrets: { 'env:MASK_SEED': 'p' } }));
  }
  for (const r of runs.slice(1)) {
    assert.equal(r.encrypted, runs[0].encrypted);
    assert.equal(r.keys, runs[0].keys);
    assert.deepEqual(r.derived, runs[0].derived);
  }
});

test('SPEC 9: the published AES-SIV keyset encrypts 17850 to the published cell (custom key store)', async () => {
  // keyData.value of the SPEC keyset: an AesSivKey proto, field 2 = 64 key bytes.
  const proto = Buffer.from('EkBKGzBuy9C3UUmWaOzpe7NBEg6QK21FRhZ9MjuD5hpa0+hPJy0kn1HngA9QUT5aGbTNQQyow0V6qJCFoFRQNNTH', 'base64');
  assert.equal(proto[0], 0x12);
  assert.equal(proto[1], 64);
  const store = {
    calls: 0,
    async getOrCreate(group, cipher, requests) {
      this.calls++;
      assert.equal(cipher, 'aes-256-siv');
      return requests.map(() => ({ keyLink: '00000000-0000-4000-8000-000000000001', keyId: 714921229, cipher, material: new Uint8Array(proto.subarray(2)), usesBefore: 0 }));
    },
  };
  const job = vectorJob('minimal.json');
  job.data_contract.pii_fields = { value: 1 };
  job.encryption.cipher = 'aes-256-siv';
  const out = await runCollected(runBatchJob, job, new TextEncoder().encode('session,ts,value\ns1,0,17850\ns2,86400000,17850\n'), { keyStore: store });
  const rows = records(out.encrypted);
  assert.deepEqual(rows.map((r) => r.value), ['ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM=', 'ASqc1Q0QalDEN+LHeyZSfGHE+s9Lqu4o+jM=']);
  assert.equal(store.calls, 1, 'one key-store round trip for the batch');
  const keyset = JSON.parse(records(out.keys)[0].encryptionKey);
  assert.equal(keyset.primaryKeyId, 714921229);
  assert.equal(keyset.key[0].keyData.value, proto.toString('base64'));
});

test('SPEC 9: MurmurHash3 masking (siv_murmur3.json, seed hi-there)', async () => {
  const csv = 'sessionId,timestamp,consentLevels,userName,email,uniqueIdentifier\n' +
    'session-273,1700000000,[1],u,e@x,unique-5\n' +
    'sensitive-0,1700000000,"[1,2]",u,e@x,not-sensitive-6\n';
  const out = await runCollected(runBatchJob, vectorJob('siv_murmur3.json'), new TextEncoder().encode(csv));
  const d = records(out.derived[0]);
  assert.deepEqual(d.map((r) => [r.sessionId, r.uniqueIdentifier]), [
    ['7cc66d130664caa9efacda1026c1c44', '1083e8169d7138e990cc30095578452'],
    ['e49bd309eed4a5094437a71ac2bc1cad', '538ad30b2aa2781e855c4eb059cf68a3'],
  ]);
  // quote "necessary" and LF on the encrypted output, as the job file says
  assert.ok(!out.encrypted.includes('\r\n'));
  assert.ok(out.encrypted.startsWith('sessionId,timestamp,'));
});

test('SPEC 9: timestamp vectors', async () => {
  for (const [format, zone, value, ms] of [
    ['yyyy-MM-dd HH:mm:ss', 'Europe/Amsterdam', '2010-12-01 08:26:00', '1291188360000'],
    ['yyyy-MM-dd HH.mm.ss.nnnnnn:Z', 'UTC', '2022-02-06 06.43.12.962083:+0100', '1644126192000'],
  ]) {
    const job = vectorJob('minimal.json');
    job.encryption.timestamp_config = { field: 'ts', format, default_time_zone: { id: zone } };
    const out = await runCollected(runBatchJob, job, new TextEncoder().encode(`session,ts,email\ns,${value},a@b\n`));
    assert.equal(records(out.encrypted)[0]['strmMeta.timestamp'], ms, format);
  }
});

test('skip_latin1_semicolon.json: ISO-8859-1 input, `;`, a ragged row skipped and reported by number', async () => {
  const csv = 'order_id;ordered_at;consent;customer_name;street\n' +
    'o1;2026-01-05T10:00:00;service|delivery;M\u00fcller;Hauptstra\u00dfe 1\n' +
    'o2;2026-01-05T11:00:00;service;Smith\n' +
    'o3;2026-01-06T09:00:00;service|delivery;Jos\u00e9;Calle 2\n';
  const latin1 = Buffer.from(csv, 'latin1');
  const states = [];
  const out = await runCollected(runBatchJob, vectorJob('skip_latin1_semicolon.json'), latin1, {
    secrets: { 'env:ORDERS_MASK_SEED': 'seed' }, onState: (e) => states.push(e),
  });
  assert.equal(out.result.summary.rowsSkipped, 1);
  assert.deepEqual(out.result.summary.skippedRows, [2]);
  const d = records(out.derived[0], ';');
  assert.deepEqual(d.map((r) => [r.customer_name, r.street]), [['M\u00fcller', 'Hauptstra\u00dfe 1'], ['Jos\u00e9', 'Calle 2']]);
  assert.match(states.at(-1).message, /skipped 1 rows: 2$/);
  assert.ok(!states.at(-1).message.includes('Smith'));
});

test('a memory key store reuses keys across jobs of one group', async () => {
  const store = new MemoryKeyStore();
  const input = vector('clickstream_dirty.csv');
  const a = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: store, secrets: { 'env:MASK_SEED': 'p' } });
  const b = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: store, secrets: { 'env:MASK_SEED': 'p' } });
  assert.equal(b.result.summary.keysCreated, 0);
  assert.deepEqual(records(b.encrypted).map((r) => r['strmMeta.keyLink']), records(a.encrypted).map((r) => r['strmMeta.keyLink']));
  assert.notEqual(b.encrypted, a.encrypted, 'AES-GCM is randomized');
});
