// Lifecycle states, heartbeats, abort and error paths, atomic file outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBatchJob, JobFileError, InputError, AbortError, KeylinkError, KeyStoreError, MemoryKeyStore } from 'keylink';
import { tmp, vector, vectorJob, clickstreamJob, collector, records } from './helpers.mjs';

const secrets = { 'env:MASK_SEED': 'pepper' };
/** Outputs dropped (in Node, left-out outputs go to the job file's targets). */
const drop = { encrypted: null, keys: null, derived: [null, null] };
/** A big enough input to abort mid-run: the dirty clickstream, repeated (header once). */
function bigInput(times) {
  const text = vector('clickstream_dirty.csv').toString('utf8');
  const nl = text.indexOf('\n') + 1;
  return Buffer.from(text + text.slice(nl).repeat(times - 1), 'utf8');
}
const outPaths = (dir, job) => ({ encrypted: join(dir, 'enc.csv'), keys: join(dir, 'keys.csv'), derived: job.derived_data.map((_, i) => join(dir, `d${i}.csv`)) });

test('states: PENDING, STARTED, RUNNING heartbeats with rows and bytes, FINISHED with a rate', async () => {
  const dir = tmp();
  const job = clickstreamJob();
  const states = [];
  const r = await runBatchJob(job, { source: bigInput(20), ...outPaths(dir, job), secrets, heartbeatMs: 0, chunkBytes: 64 << 10, onState: (e) => states.push(e) });
  const names = states.map((s) => s.state);
  assert.deepEqual(names.slice(0, 3), ['PENDING', 'STARTED', 'RUNNING']);
  assert.equal(names.at(-1), 'FINISHED');
  const beats = states.filter((s) => s.state === 'RUNNING');
  assert.ok(beats.length > 3, `${beats.length} heartbeats`);
  for (let i = 1; i < beats.length; i++) assert.ok(beats[i].rows >= beats[i - 1].rows && beats[i].bytes >= beats[i - 1].bytes);
  assert.match(states.at(-1).message, /^Processed \d+ records in \d+\.\d s \(\d+ records\/s\)$/);
  assert.ok(states.every((s) => s.jobId === r.jobId));
  assert.match(r.jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.deepEqual(r.states, states);
  assert.deepEqual(readdirSync(dir).sort(), ['d0.csv', 'd1.csv', 'enc.csv', 'keys.csv']);
});

test('a bad job file: JobFileError with JSON paths, no job, no files', async () => {
  const dir = tmp();
  const job = clickstreamJob();
  job.encryption.window_hours = 0;
  job.derived_data[1].consent_level_type = 'SOMETIMES';
  const states = [];
  await assert.rejects(runBatchJob(job, { source: vector('clickstream_dirty.csv'), ...outPaths(dir, job), onState: (e) => states.push(e) }), (e) => {
    assert.ok(e instanceof JobFileError && e instanceof KeylinkError && e instanceof Error);
    assert.equal(e.code, 'INVALID_CONFIG');
    assert.deepEqual(e.problems.map((p) => p.path).sort(), ['derived_data[1].consent_level_type', 'encryption.window_hours']);
    return true;
  });
  assert.deepEqual(states, []);
  assert.deepEqual(readdirSync(dir), []);
});

test('a bad row under `fail`: InputError naming row and line, ERROR, nothing partial left', async () => {
  const dir = tmp();
  const job = clickstreamJob();
  const text = vector('clickstream_dirty.csv').toString('utf8');
  const bad = text + 'x,sess-1,2026-03-02T21:11:08Z,[],user@example.com\n';
  const states = [];
  await assert.rejects(runBatchJob(job, { source: Buffer.from(bad), ...outPaths(dir, job), secrets, onState: (e) => states.push(e) }), (e) => {
    assert.ok(e instanceof InputError);
    assert.equal(e.code, 'RAGGED_ROW');
    assert.equal(e.row, records(text).length + 1);
    assert.ok(e.line > e.row);
    assert.ok(!e.message.includes('user@example.com'));
    return true;
  });
  assert.equal(states.at(-1).state, 'ERROR');
  assert.deepEqual(readdirSync(dir), [], 'no output and no temporary file');
});

test('a bad timestamp names row, line and column, never the value', async () => {
  const job = vectorJob('minimal.json');
  await assert.rejects(runBatchJob(job, { source: Buffer.from('session,ts,email\ns,1,a@b\ns,yesterday,c@d\n'), ...drop }), (e) => {
    assert.equal(e.code, 'BAD_TIMESTAMP');
    assert.equal(e.row, 2);
    assert.equal(e.line, 3);
    assert.equal(e.column, 'ts');
    assert.ok(!e.message.includes('yesterday') && !e.message.includes('c@d'));
    return true;
  });
});

test('a missing column is a start error (ERROR_STARTING)', async () => {
  const states = [];
  await assert.rejects(runBatchJob(vectorJob('minimal.json'), { source: Buffer.from('session,ts\ns,1\n'), ...drop, onState: (e) => states.push(e) }), (e) => {
    assert.equal(e.code, 'MISSING_COLUMN');
    assert.equal(e.column, 'email');
    return true;
  });
  assert.equal(states.at(-1).state, 'ERROR_STARTING');
});

test('abort mid-run: AbortError, state ERROR, no file left, streams aborted', async () => {
  const dir = tmp();
  const job = clickstreamJob();
  const ac = new AbortController();
  const states = [];
  const p = runBatchJob(job, {
    source: bigInput(200), ...outPaths(dir, job), secrets, signal: ac.signal, heartbeatMs: 0, chunkBytes: 64 << 10,
    onState: (e) => { states.push(e); if (e.state === 'RUNNING' && e.rows > 2000) ac.abort(); },
  });
  await assert.rejects(p, (e) => e instanceof AbortError && e.code === 'ABORTED' && e.name === 'AbortError');
  assert.equal(states.at(-1).state, 'ERROR');
  assert.ok(states.some((s) => s.state === 'RUNNING' && s.rows > 0));
  assert.deepEqual(readdirSync(dir), []);

  const enc = collector();
  const ac2 = new AbortController();
  const p2 = runBatchJob(job, { source: new Blob([bigInput(200)]), ...drop, encrypted: enc.stream, secrets, signal: ac2.signal, chunkBytes: 64 << 10, heartbeatMs: 0,
    onState: (e) => { if (e.state === 'RUNNING' && e.rows > 1000) ac2.abort(new Error('user cancelled')); } });
  await assert.rejects(p2, AbortError);
  assert.ok(enc.aborted && !enc.closed);
});

test('an already-aborted signal never starts the job', async () => {
  const ac = new AbortController();
  ac.abort();
  const states = [];
  await assert.rejects(runBatchJob(vectorJob('minimal.json'), { source: Buffer.from('session,ts,email\n'), ...drop, signal: ac.signal, onState: (e) => states.push(e) }), AbortError);
  assert.deepEqual(states.map((s) => s.state), ['PENDING', 'ERROR_STARTING']);
});

test('an existing target is not overwritten unless asked; the message names it', async () => {
  const dir = tmp();
  const job = clickstreamJob();
  const paths = outPaths(dir, job);
  writeFileSync(paths.encrypted, 'precious');
  await assert.rejects(runBatchJob(job, { source: vector('clickstream_dirty.csv'), ...paths, secrets }), (e) => {
    assert.equal(e.code, 'TARGET_EXISTS');
    assert.ok(e.message.includes(paths.encrypted));
    return true;
  });
  assert.equal(readFileSync(paths.encrypted, 'utf8'), 'precious');
  assert.deepEqual(readdirSync(dir), ['enc.csv']);
  await runBatchJob(job, { source: vector('clickstream_dirty.csv'), ...paths, secrets, overwrite: true });
  assert.ok(readFileSync(paths.encrypted, 'utf8').startsWith('"event_id"'));
});

test('Node: job file path, local connectors, file: secrets and data_contract_file resolved like the CLI', async () => {
  const dir = tmp();
  writeFileSync(join(dir, 'seed.txt'), 'pepper\n');
  writeFileSync(join(dir, 'contract.json'), JSON.stringify({ ref: 'acme/clicks/1.0.0', key_field: 'session_id', pii_fields: { email: 1 } }));
  writeFileSync(join(dir, 'events.csv'), vector('clickstream_dirty.csv'));
  const job = {
    data_connectors: { here: { local: { root: dir } } },
    data_contract_file: join(dir, 'contract.json'),
    source_data: { data_connector_ref: { name: 'here' }, file_name: 'events.csv' },
    encrypted_data: { target: { data_connector_ref: { name: 'here' } } },
    encryption_keys_data: { target: { data_connector_ref: { name: 'here' } } },
    consent: { default_consent_levels: [1] },
    encryption: { timestamp_config: { field: 'timestamp', format: 'iso8601' } },
    derived_data: [{ target: { data_connector_ref: { name: 'here' }, path_prefix: 'out' }, consent_levels: [1],
      masked_fields: { seed: `file:${join(dir, 'seed.txt')}`, fields: ['customer_id'] } }],
  };
  writeFileSync(join(dir, 'job.json'), JSON.stringify(job));
  const r = await runBatchJob(join(dir, 'job.json'));
  assert.equal(r.group, r.jobId, 'without a group id the job is its own group');
  assert.ok(existsSync(join(dir, 'events-encrypted.csv')) && existsSync(join(dir, 'events-keys.csv')) && existsSync(join(dir, 'out', 'events-derived-1.csv')));
  // the mask is HMAC-SHA-256 keyed with the file's content without its line end
  const { createHmac } = await import('node:crypto');
  const d = records(readFileSync(join(dir, 'out', 'events-derived-1.csv')));
  const plain = records(vector('clickstream_dirty.csv'));
  const first = d[0];
  const src = plain.find((p) => p.event_id === first.event_id);
  assert.equal(first.customer_id, createHmac('sha256', 'pepper').update(src.customer_id).digest('hex'));
});

test('a missing secret fails to start, naming the reference', async () => {
  await assert.rejects(runBatchJob(clickstreamJob(), { source: vector('clickstream_dirty.csv'), ...drop }), (e) => e.code === 'SECRET' && e.message.includes('env:MASK_SEED'));
});

test('transient start failures are retried with back-off, then ERROR_STARTING is final', async () => {
  const states = [];
  const file = join(tmp(), 'a-file');
  writeFileSync(file, '');
  await assert.rejects(
    runBatchJob(vectorJob('minimal.json'), { source: Buffer.from('session,ts,email\n'), encrypted: join(file, 'sub', 'enc.csv'), keys: null, startRetries: 2, retryBaseDelayMs: 1, onState: (e) => states.push(e) }),
  );
  const starting = states.filter((s) => s.state === 'ERROR_STARTING');
  assert.equal(starting.length, 3);
  assert.match(starting[0].message, /attempt 1 of 3; retrying/);
  assert.match(starting[2].message, /attempt 3 of 3; giving up/);
});

test("a group's cipher is fixed at first use", async () => {
  const store = new MemoryKeyStore();
  const job = vectorJob('minimal.json');
  job.encryption.batch_job_group_id = 'fixed';
  await runBatchJob(job, { source: Buffer.from('session,ts,email\ns,1,a@b\n'), ...drop, keyStore: store });
  job.encryption.cipher = 'aes-256-siv';
  await assert.rejects(runBatchJob(job, { source: Buffer.from('session,ts,email\ns,1,a@b\n'), ...drop, keyStore: store }), (e) => e instanceof KeyStoreError && e.code === 'CIPHER_MISMATCH');
});
