// Parallel engine jobs in Node (`workers`): the input is cut into chunks on
// record boundaries (quoted line feeds included), dealt to worker threads,
// and written in input order. Checked against one engine job on this thread:
// the same rows decrypt to the input, the same derived rows, keys listed once
// in first-use order, errors and skipped rows at the file's own positions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBatchJob, MemoryKeyStore, SqliteKeyStore, InputError } from 'keylink';
import Database from 'better-sqlite3';
import { CLI, tmp, vector, records, clickstreamJob, runCollected, kekKeyset, tinkGcmOpen, openEncryptedKeyset } from './helpers.mjs';

const secrets = { 'env:MASK_SEED': 'pepper' };
const SEED = new Uint8Array(32).fill(3);
const PII = ['email', 'customer_id', 'ip_address'];
// Small chunks, so a few hundred KB make many of them (more than two chunks
// engage the worker threads).
const CHUNK = 16 << 10;

/** The shared dirty clickstream (quoted line feeds, offsets, odd consent), repeated; header once. */
function bigInput(times) {
  const text = vector('clickstream_dirty.csv').toString('utf8');
  const nl = text.indexOf('\n') + 1;
  return Buffer.from(text + text.slice(nl).repeat(times - 1), 'utf8');
}

/** Records without the columns that differ between engine jobs (each has its own nonces). */
const stable = (text) => records(text).map(({ ['strmMeta.nonce']: _n, ...r }) => r);

test('two workers: outputs decrypt to the input, same derived rows, counts and key links as one worker', async () => {
  const dir = tmp();
  const input = bigInput(12);
  const store = SqliteKeyStore.open(join(dir, 'k.db'));
  const one = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: store, secrets, chunkBytes: CHUNK, workers: 1 });
  const two = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: store, secrets, chunkBytes: CHUNK, workers: 2 });
  store.close();
  const s1 = one.result.summary, s2 = two.result.summary;
  for (const k of ['rowsRead', 'rowsWritten', 'rowsSkipped', 'keysUsed', 'valuesEncrypted']) assert.equal(s2[k], s1[k], k);
  assert.deepEqual(s2.derivedRows, s1.derivedRows);
  assert.equal(s2.keysCreated, 0, 'the second job found every key in the store');
  assert.deepEqual(new Map(s2.keyUses), new Map(s1.keyUses));
  // Same key links row by row; derived outputs equal but for the nonces.
  assert.deepEqual(records(two.encrypted).map((r) => r['strmMeta.keyLink']), records(one.encrypted).map((r) => r['strmMeta.keyLink']));
  two.derived.forEach((d, i) => assert.deepEqual(stable(d), stable(one.derived[i])));
  // Each key listed once, in the order of first use, as one worker lists them.
  assert.equal(two.keys, one.keys);
  // The CLI decrypts the two-worker output back to the input.
  writeFileSync(join(dir, 'keys.csv'), two.keys);
  writeFileSync(join(dir, 'enc.csv'), two.encrypted);
  await promisify(execFile)(CLI, ['decrypt', '--keys', join(dir, 'keys.csv'), join(dir, 'enc.csv'), join(dir, 'dec.csv'), '--overwrite']);
  const plain = records(input);
  const dec = records(readFileSync(join(dir, 'dec.csv')));
  assert.equal(dec.length, plain.length);
  for (const [i, r] of dec.entries()) {
    assert.equal(r.event_id, plain[i].event_id);
    for (const c of PII) assert.equal(r[c], plain[i][c], `row ${i + 1} ${c}`);
  }
});

test('two workers, fixed seed: the same outputs byte for byte on the same store', async () => {
  const input = bigInput(6);
  const store = new MemoryKeyStore();
  const opts = { keyStore: store, secrets, seed: SEED, chunkBytes: CHUNK, workers: 2 };
  await runCollected(runBatchJob, clickstreamJob(), input, opts);
  const a = await runCollected(runBatchJob, clickstreamJob(), input, opts);
  const b = await runCollected(runBatchJob, clickstreamJob(), input, opts);
  assert.equal(a.encrypted, b.encrypted);
  assert.equal(a.keys, b.keys);
  assert.deepEqual(a.derived, b.derived);
});

test('an input of at most two chunks runs on one engine job whatever `workers` says', async () => {
  const input = vector('clickstream_dirty.csv');
  const opts = { secrets, seed: SEED, chunkBytes: input.length };
  const a = await runCollected(runBatchJob, clickstreamJob(), input, { ...opts, workers: 4 });
  const b = await runCollected(runBatchJob, clickstreamJob(), input, { ...opts, workers: 1 });
  assert.equal(a.encrypted, b.encrypted);
  assert.equal(a.keys, b.keys);
  assert.deepEqual(a.derived, b.derived);
});

/** The input with line `at` (1-based, header = 1) replaced by `line`. */
function withLine(input, at, line) {
  const lines = input.toString('utf8').split('\n');
  // Count physical lines: the dirty vector has quoted line feeds, so find a
  // line that starts a record (an event id, a comma) at or after `at`.
  let i = at - 1;
  while (!/^\d+,sess-/.test(lines[i])) i++;
  lines[i] = line;
  return { input: Buffer.from(lines.join('\n'), 'utf8'), line: i + 1 };
}

test('a bad row in a late chunk: the same error, row and line as one engine job', async () => {
  const base = bigInput(12);
  const total = base.toString('utf8').split('\n').length;
  const { input, line } = withLine(base, Math.floor(total * 0.8), '1,sess-00000001,2026-03-01T00:00:00Z,[1]');
  const errors = [];
  for (const workers of [1, 2]) {
    const e = await runBatchJob(clickstreamJob(), { source: input, encrypted: null, keys: null, derived: [null, null], secrets, chunkBytes: CHUNK, workers }).then(
      () => assert.fail('the job should fail'),
      (x) => x,
    );
    assert.ok(e instanceof InputError, String(e));
    errors.push({ code: e.code, row: e.row, line: e.line, message: e.message });
  }
  assert.equal(errors[0].code, 'RAGGED_ROW');
  assert.equal(errors[0].line, line);
  assert.deepEqual(errors[1], errors[0]);
});

test('error policy skip: the same skipped rows (file numbering) as one engine job', async () => {
  let input = bigInput(12);
  const total = input.toString('utf8').split('\n').length;
  for (const at of [0.2, 0.5, 0.9]) input = withLine(input, Math.floor(total * at), '7,sess-1,not a time,[1],a@b.c,C1,1.2.3.4,/,S,1,NL').input;
  const job = { ...clickstreamJob(), error_policy: 'skip' };
  const runs = [];
  for (const workers of [1, 2]) runs.push((await runCollected(runBatchJob, job, input, { secrets, chunkBytes: CHUNK, workers })).result.summary);
  // (At least the three; a replaced record's quoted line feed may leave a ragged rest.)
  assert.ok(runs[0].rowsSkipped >= 3, `${runs[0].rowsSkipped} skipped`);
  assert.equal(runs[1].rowsSkipped, runs[0].rowsSkipped);
  assert.deepEqual(runs[1].skippedRows, runs[0].skippedRows);
  assert.equal(runs[1].rowsWritten, runs[0].rowsWritten);
});

test('workers must be an integer from 1 to 64', async () => {
  for (const workers of [0, 1.5, 65]) {
    await assert.rejects(runBatchJob(clickstreamJob(), { source: vector('clickstream_dirty.csv'), workers, secrets }), (e) => e.code === 'INVALID_CONFIG' && /workers/.test(e.message));
  }
});

test('an abort while the job waits for its engine jobs to finish: AbortError, state ERROR, no file left', async () => {
  const dir = tmp();
  const input = bigInput(12);
  const ac = new AbortController();
  async function* source() {
    for (let i = 0; i < input.length; i += 8192) yield input.subarray(i, i + 8192);
    // Aborted once the whole input was read: while the job waits for its engine jobs.
    setTimeout(() => ac.abort(), 0);
  }
  const states = [];
  const job = clickstreamJob();
  const p = runBatchJob(job, {
    source: source(), encrypted: join(dir, 'enc.csv'), keys: join(dir, 'keys.csv'), derived: [join(dir, 'd0.csv'), join(dir, 'd1.csv')],
    secrets, chunkBytes: CHUNK, workers: 2, signal: ac.signal, onState: (e) => states.push(e.state),
  });
  await assert.rejects(p, (e) => e.code === 'ABORTED');
  assert.equal(states.at(-1), 'ERROR');
  const { readdirSync } = await import('node:fs');
  assert.deepEqual(readdirSync(dir), []);
});

test('a custom store may keep the proposals it is given: their key material is not zeroed after use', async () => {
  const kept = [];
  const inner = new MemoryKeyStore();
  const store = {
    async getOrCreate(group, cipher, requests) {
      for (const r of requests) kept.push(r.proposal.material);
      return inner.getOrCreate(group, cipher, requests);
    },
  };
  await runCollected(runBatchJob, clickstreamJob(), bigInput(6), { keyStore: store, secrets, chunkBytes: CHUNK, workers: 2 });
  assert.ok(kept.length > 10, `${kept.length} proposals`);
  assert.ok(kept.every((m) => m.length === 32 && m.some((b) => b !== 0)), 'a proposal was zeroed under the store');
});

test('two workers on a fresh SQLite store with a KEK: its session creates each key once, wrapped, uses counted', async () => {
  const dir = tmp();
  const path = join(dir, 'k.db');
  const kek = kekKeyset();
  const input = bigInput(12);
  const store = SqliteKeyStore.open(path, { kek: kek.json });
  const two = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: store, secrets, chunkBytes: CHUNK, workers: 2 });
  const s = two.result.summary;
  assert.equal(store.count(), s.keysUsed, 'committed before the job returned, each key once');
  store.close();
  const db = new Database(path, { readonly: true });
  const rows = db.prepare('SELECT key_link, material, wrapped, uses FROM keys').all();
  db.close();
  assert.ok(rows.every((r) => r.wrapped === 1 && tinkGcmOpen(kek, r.material, Buffer.from(r.key_link, 'utf8')).length === 32), 'wrapped under the KEK');
  assert.equal(rows.reduce((n, r) => n + r.uses, 0), s.valuesEncrypted);
  const stored = new Map(rows.map((r) => [r.key_link, tinkGcmOpen(kek, r.material, Buffer.from(r.key_link, 'utf8'))]));
  const listed = records(two.keys);
  assert.equal(listed.length, s.keysUsed);
  for (const k of listed) assert.ok(openEncryptedKeyset(kek, k.encryptionKey).keyset.includes(stored.get(k.keyLink)), 'the keys output holds the stored key');
  // One engine job on the same store finds every key.
  const again = SqliteKeyStore.open(path, { kek: kek.json });
  const one = await runCollected(runBatchJob, clickstreamJob(), input, { keyStore: again, secrets, chunkBytes: CHUNK, workers: 1 });
  again.close();
  assert.equal(one.result.summary.keysCreated, 0);
  assert.deepEqual(records(one.encrypted).map((r) => r['strmMeta.keyLink']), records(two.encrypted).map((r) => r['strmMeta.keyLink']));
});
