// Edge-style: the environment-neutral entry point, bundled into one script,
// runs a job in a bare V8 context (node:vm) that has no `fs`, no `process`,
// no `require`, no `Buffer`: only the web globals passed in. The wasm engine
// is passed as bytes, or as a WebAssembly.Module compiled in that context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import vm from 'node:vm';
import { build } from 'esbuild';
import { SDK, vector, records, clickstreamJob, kekKeyset, openEncryptedKeyset } from './helpers.mjs';

const bundle = (await build({
  entryPoints: [join(SDK, 'dist', 'index.js')], bundle: true, format: 'iife', globalName: 'keylink',
  platform: 'neutral', mainFields: ['module', 'main'], write: false, logLevel: 'silent',
})).outputFiles[0].text;
const wasm = readFileSync(join(SDK, 'dist', 'wasm', 'keylink_bg.wasm'));

/** A fresh context with web globals only. */
function edgeContext() {
  const ctx = vm.createContext({
    TextEncoder, TextDecoder, crypto, ReadableStream, WritableStream, URL, AbortController, console,
    setTimeout, clearTimeout, queueMicrotask,
  });
  vm.runInContext(bundle, ctx, { filename: 'keylink.bundle.js' });
  return ctx;
}

const script = `
(async () => {
  const wasm = new Uint8Array(WASM);                 // the engine, as bytes of this realm
  await keylink.initKeylink(AS_MODULE ? new WebAssembly.Module(wasm) : wasm);
  const chunks = { encrypted: [], keys: [], d0: [], d1: [] };
  const sink = (name) => new WritableStream({ write(c) { chunks[name].push(new TextDecoder().decode(c, { stream: true })); } });
  const input = new TextEncoder().encode(CSV);
  const source = new ReadableStream({ start(c) { for (let i = 0; i < input.length; i += 4096) c.enqueue(input.slice(i, i + 4096)); c.close(); } });
  const states = [];
  const store = new keylink.MemoryKeyStore();
  const result = await keylink.runBatchJob(JOB, { source, encrypted: sink('encrypted'), keys: sink('keys'), derived: [sink('d0'), sink('d1')],
    keyStore: store, secrets: SECRETS, onState: (e) => states.push(e.state) });
  let badCode;
  try { await keylink.runBatchJob({ ...JOB, error_policy: 'sometimes' }, { source: input }); } catch (e) { badCode = e.code + ':' + (e instanceof keylink.JobFileError); }
  return JSON.stringify({ summary: result.summary, states, badCode, out: Object.fromEntries(Object.entries(chunks).map(([k, v]) => [k, v.join('')])) });
})()`;

for (const asModule of [false, true]) {
  test(`the bundle runs a job in a bare V8 context without fs or Node globals (wasm as ${asModule ? 'a WebAssembly.Module' : 'bytes'})`, async () => {
    const ctx = edgeContext();
    for (const g of ['process', 'require', 'Buffer', 'global', 'fetch']) assert.equal(vm.runInContext(`typeof ${g}`, ctx), 'undefined', g);
    Object.assign(ctx, { WASM: wasm, AS_MODULE: asModule, CSV: vector('clickstream_dirty.csv').toString('utf8'), JOB: clickstreamJob(), SECRETS: { 'env:MASK_SEED': 'pepper' } });
    const r = JSON.parse(await vm.runInContext(script, ctx));
    const plain = records(vector('clickstream_dirty.csv'));
    assert.equal(r.summary.rowsWritten, plain.length);
    assert.equal(records(r.out.encrypted).length, plain.length);
    assert.equal(records(r.out.keys).length, r.summary.keysUsed);
    assert.equal(records(r.out.d0).length, r.summary.derivedRows[0]);
    assert.deepEqual([r.states[0], r.states[1], r.states.at(-1)], ['PENDING', 'STARTED', 'FINISHED']);
    assert.equal(r.badCode, 'INVALID_CONFIG:true');
  });
}

test('in a bare V8 context, a job file with encryption.kek writes its keys output as Tink encrypted keysets (WebCrypto)', async () => {
  const ctx = edgeContext();
  const kek = kekKeyset();
  Object.assign(ctx, { WASM: wasm, AS_MODULE: false, CSV: vector('clickstream_dirty.csv').toString('utf8'),
    JOB: clickstreamJob({ kek: 'env:KEYLINK_KEK' }), SECRETS: { 'env:MASK_SEED': 'pepper', 'env:KEYLINK_KEK': kek.json } });
  const r = JSON.parse(await vm.runInContext(script, ctx));
  const keys = records(r.out.keys);
  assert.equal(keys.length, r.summary.keysUsed);
  for (const k of keys) openEncryptedKeyset(kek, k.encryptionKey);
  assert.equal(r.states.at(-1), 'FINISHED');
});

test('the environment-neutral entry point refuses to run before the engine is given', async () => {
  const ctx = edgeContext();
  Object.assign(ctx, { JOB: clickstreamJob() });
  const msg = await vm.runInContext(`keylink.describeJob ? (() => { try { keylink.describeJob(JOB); return 'ran'; } catch (e) { return e.code; } })() : 'none'`, ctx);
  assert.equal(msg, 'WASM_NOT_INITIALISED');
});
