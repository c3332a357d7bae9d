// Packaging: `npm pack`, install the tarball into a fresh project, run a job
// from ESM and from CommonJS (Node's require(esm), Node >= 20.19), and check
// the package's types resolve for a TypeScript consumer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { SDK, tmp } from './helpers.mjs';

const run = promisify(execFile);
const JOB = JSON.stringify({
  data_contract: { ref: 'acme/clicks/1.0.0', key_field: 'session', pii_fields: { email: 1 } },
  source_data: { file_name: 'in.csv' },
  consent: { default_consent_levels: [1] },
  encryption: { timestamp_config: { field: 'ts', format: 'epoch_millis' } },
  derived_data: [{ consent_levels: [1] }],
});

test('npm pack, install into a fresh project, run a job from ESM and from CommonJS, types resolve', async () => {
  const packDir = tmp('keylink-pack-');
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: SDK });
  const [info] = JSON.parse(stdout);
  const files = info.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/node.d.ts', 'dist/browser.js', 'dist/wasm/keylink_bg.wasm', 'dist/wasm/keylink.js']) {
    assert.ok(files.includes(f), `${f} in the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('node_modules/')));

  const app = tmp('keylink-app-');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--offline', join(packDir, info.filename)], { cwd: app });
  writeFileSync(join(app, 'in.csv'), 'session,ts,email\ns1,1700000000000,a@example.com\ns2,1700000000001,b@example.com\n');
  writeFileSync(join(app, 'job.json'), JOB);
  writeFileSync(join(app, 'esm.mjs'), `
import { runBatchJob, MemoryKeyStore, JobFileError } from 'keylink';
const r = await runBatchJob('job.json', { keyStore: new MemoryKeyStore(), encrypted: 'esm-enc.csv', keys: 'esm-keys.csv', derived: ['esm-d.csv'] });
let bad; try { await runBatchJob({}, {}); } catch (e) { bad = e instanceof JobFileError && e.code; }
console.log(JSON.stringify({ rows: r.summary.rowsWritten, bad, wasm: import.meta.resolve('keylink/keylink_bg.wasm') }));
`);
  writeFileSync(join(app, 'cjs.cjs'), `
const { runBatchJob, SqliteKeyStore } = require('keylink');
(async () => {
  const r = await runBatchJob('job.json', { encrypted: 'cjs-enc.csv', keys: 'cjs-keys.csv', derived: [null] });
  console.log(JSON.stringify({ rows: r.summary.rowsWritten, sqlite: typeof SqliteKeyStore.open }));
})().catch((e) => { console.error(e); process.exit(1); });
`);
  const esm = JSON.parse((await run(process.execPath, ['esm.mjs'], { cwd: app })).stdout);
  assert.equal(esm.rows, 2);
  assert.equal(esm.bad, 'INVALID_CONFIG');
  assert.match(esm.wasm, /node_modules\/keylink\/dist\/wasm\/keylink_bg\.wasm$/);
  assert.ok(readFileSync(join(app, 'esm-enc.csv'), 'utf8').includes('strmMeta.keyLink'));
  const cjs = JSON.parse((await run(process.execPath, ['--no-warnings', 'cjs.cjs'], { cwd: app })).stdout);
  assert.deepEqual(cjs, { rows: 2, sqlite: 'function' });
  assert.ok(readFileSync(join(app, 'cjs-keys.csv'), 'utf8').startsWith('"keyLink"'));

  // a TypeScript consumer: Node resolution picks the node types, with the job-file types
  writeFileSync(join(app, 'use.ts'), `
import { runBatchJob, SqliteKeyStore, type JobFile, type StateEvent } from 'keylink';
const job: JobFile = { source_data: { file_name: 'in.csv' }, encryption: { timestamp_config: { field: 'ts', format: 'epoch_millis' } } };
export const p = runBatchJob(job, { source: 'in.csv', keyStore: SqliteKeyStore.open('k.db'), onState: (e: StateEvent) => e.rows });
// @ts-expect-error: not a cipher
export const bad: JobFile = { source_data: { file_name: 'x' }, encryption: { cipher: 'rot13', timestamp_config: { field: 't', format: 'x' } } };
`);
  const program = ts.createProgram([join(app, 'use.ts')], { strict: true, noEmit: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, skipLibCheck: true, types: [], typeRoots: [join(SDK, 'node_modules', '@types')] });
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName.endsWith('use.ts')).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(diags, []);
});
