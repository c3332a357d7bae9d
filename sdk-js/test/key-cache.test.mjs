// The bounded key cache (`keyCache`): the engine forgets keys between
// batches and the SDK writes the keys output (one row per key), merges use
// counts across evictions and adds earlier uses to `usesBefore`. Outputs do
// not depend on the cache size.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runBatchJob, initKeylinkNode, MemoryKeyStore, SqliteKeyStore } from 'keylink';
import { Job } from '../dist/wasm/keylink.js';
import { CLI, tmp, vector, records, clickstreamJob, runCollected, kekKeyset } from './helpers.mjs';

await initKeylinkNode();
const SEED = new Uint8Array(32).fill(7);
const secrets = { 'env:MASK_SEED': 'pepper' };
const PII = ['email', 'customer_id', 'ip_address'];

/** A clickstream of `n` rows over `sessions` sessions and several days. */
function clickstream(n, sessions) {
  let s = 'event_id,session_id,timestamp,consent,email,customer_id,ip_address,page,product_sku,price,country\n';
  for (let i = 0; i < n; i++) {
    const sess = (i * 7919) % sessions;
    const t = new Date(Date.UTC(2026, 2, 1 + (i % 5), (i * 13) % 24, i % 60, 0)).toISOString();
    const consent = ['[]', '[1]', '[1,2]'][i % 3];
    const email = i % 4 === 0 ? '' : `user${sess}@example.com`;
    s += `${i},sess-${sess},${t},"${consent}",${email},C${sess},10.0.${i % 256}.${sess % 256},/p/${i % 17},SKU-${i % 101},${(i % 1000) / 10},DE\n`;
  }
  return new TextEncoder().encode(s);
}

/** The engine driven directly, writing its own keys output (no key cache): the reference bytes. */
async function engineReference(job, input, store) {
  const j = new Job(JSON.stringify(job), {}, secrets, SEED);
  const out = { encrypted: [], keys: [], derived: job.derived_data.map(() => []) };
  const take = (o) => {
    out.encrypted.push(o.encrypted);
    out.keys.push(o.keys);
    o.derived.forEach((d, i) => out.derived[i].push(d));
  };
  const answer = async () => {
    const reqs = j.keyRequests();
    if (reqs.length) j.provideKeys(await store.getOrCreate('g1', 'aes-256-gcm', reqs));
    take(j.drain());
  };
  j.push(input);
  await answer();
  j.endInput();
  await answer();
  take(j.finish().outputs);
  j.free();
  const text = (parts) => Buffer.concat(parts).toString('utf8');
  return { encrypted: text(out.encrypted), keys: text(out.keys), derived: out.derived.map(text) };
}

/** Values encrypted per key link, counted in an encrypted output. */
function cellsPerKey(encrypted, plain) {
  const n = new Map();
  records(encrypted).forEach((r, i) => {
    const cells = PII.filter((c) => plain[i][c] !== '').length;
    n.set(r['strmMeta.keyLink'], (n.get(r['strmMeta.keyLink']) ?? 0) + cells);
  });
  for (const [k, v] of n) if (v === 0) n.delete(k);
  return n;
}

function usesInStore(path) {
  const db = new Database(path, { readonly: true });
  const m = new Map(db.prepare('SELECT key_link, uses FROM keys').all().filter((r) => r.uses > 0).map((r) => [r.key_link, Number(r.uses)]));
  db.close();
  return m;
}

const sorted = (m) => [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1));

test('the keys output is byte-identical to the engine\'s own (fixed seed, default key cache)', async () => {
  for (const input of [vector('clickstream_dirty.csv'), clickstream(3000, 400)]) {
    const ref = await engineReference(clickstreamJob(), input, new MemoryKeyStore());
    const out = await runCollected(runBatchJob, clickstreamJob(), input, { seed: SEED, secrets });
    assert.equal(out.keys, ref.keys);
    assert.equal(out.encrypted, ref.encrypted);
    assert.deepEqual(out.derived, ref.derived);
    assert.equal(out.result.summary.keysUsed, records(ref.keys).length);
  }
});

for (const [name, input] of [['clickstream_dirty.csv', vector('clickstream_dirty.csv')], ['a generated clickstream', clickstream(3000, 400)]]) {
  test(`keyCache 2 (${name}): same outputs as the default cache, every key listed once, uses recorded per key`, async () => {
    const dir = tmp();
    const plain = records(input);
    const opts = { seed: SEED, secrets, chunkBytes: 1024 };

    // Default cache on a fresh store, then keyCache 2 on the same store (the same keys): byte-identical.
    const db = join(dir, 'a.db');
    let store = SqliteKeyStore.open(db);
    const full = await runCollected(runBatchJob, clickstreamJob(), input, { ...opts, keyStore: store });
    const tiny = await runCollected(runBatchJob, clickstreamJob(), input, { ...opts, keyStore: store, keyCache: 2 });
    assert.equal(store.count(), full.result.summary.keysUsed, 'no key added by the second run');
    store.close();
    assert.equal(tiny.encrypted, full.encrypted);
    assert.equal(tiny.keys, full.keys);
    assert.deepEqual(tiny.derived, full.derived);
    assert.equal(tiny.result.summary.keysUsed, full.result.summary.keysUsed);
    const cells = cellsPerKey(full.encrypted, plain);
    assert.deepEqual(sorted(usesInStore(db)), sorted(new Map([...cells].map(([k, n]) => [k, 2 * n]))), 'each run recorded its cells per key');

    // keyCache 2 on a fresh store: every key once, uses per key = its encrypted cells.
    const db2 = join(dir, 'b.db');
    store = SqliteKeyStore.open(db2);
    const fresh = await runCollected(runBatchJob, clickstreamJob(), input, { ...opts, keyStore: store, keyCache: 2 });
    assert.equal(store.count(), fresh.result.summary.keysCreated);
    store.close();
    const links = records(fresh.keys).map((k) => k.keyLink);
    assert.equal(new Set(links).size, links.length, 'no key listed twice');
    assert.equal(links.length, fresh.result.summary.keysUsed);
    assert.deepEqual(new Set(links), new Set(records(fresh.encrypted).map((r) => r['strmMeta.keyLink'])));
    const freshCells = cellsPerKey(fresh.encrypted, plain);
    assert.deepEqual(sorted(usesInStore(db2)), sorted(freshCells));
    assert.deepEqual(sorted(new Map(fresh.result.summary.keyUses)), sorted(freshCells));
    assert.equal([...freshCells.values()].reduce((a, b) => a + b, 0), fresh.result.summary.valuesEncrypted);
  });
}

/** Runs a job, recording the usesBefore of every key the SDK provides to the engine. */
async function watchProvided(input, opts) {
  const provided = new Map();
  const original = Job.prototype.provideKeys;
  Job.prototype.provideKeys = function (keys) {
    for (const k of keys) {
      const list = provided.get(k.keyLink) ?? [];
      list.push(k.usesBefore);
      provided.set(k.keyLink, list);
    }
    return original.call(this, keys);
  };
  try {
    // One engine job, on this thread (the patched prototype sees its keys).
    return { provided, r: await runCollected(runBatchJob, clickstreamJob(), input, { seed: SEED, secrets, chunkBytes: 512, keyCache: 2, workers: 1, ...opts }) };
  } finally {
    Job.prototype.provideKeys = original;
  }
}

// answerCache 0 and 8: keys are forgotten by the engine and provided again by
// the SDK, which must add this job's earlier uses (the engine checks the
// 2^31 cap against usesBefore). With 8, some come from the engine's table.
for (const answerCache of [0, 8]) {
  test(`keyCache 2, answerCache ${answerCache}: a key provided again carries this job's earlier uses in usesBefore`, async () => {
    const input = clickstream(2000, 50);
    const { provided, r } = await watchProvided(input, { answerCache });
    const cells = cellsPerKey(r.encrypted, records(input));
    let again = 0;
    for (const [link, list] of provided) {
      assert.equal(list[0], 0, 'a fresh memory store: no uses before the job');
      for (let i = 1; i < list.length; i++) {
        again++;
        assert.ok(list[i] >= list[i - 1] && list[i] < (cells.get(link) ?? 0), `earlier uses of ${link}: ${list}`);
      }
      if (list.length > 1) assert.ok(list.at(-1) > 0);
    }
    assert.ok(again > 100, 'keys were evicted and provided again');
    const links = records(r.keys).map((k) => k.keyLink);
    assert.equal(new Set(links).size, links.length);
    assert.equal(links.length, provided.size);
    assert.deepEqual(sorted(new Map(r.result.summary.keyUses)), sorted(cells));
  });
}

test('keyCache 2 with the default answerCache: each key provided once, same outputs and counts', async () => {
  const input = clickstream(2000, 50);
  const { provided, r } = await watchProvided(input, {});
  for (const [link, list] of provided) assert.deepEqual(list, [0], `${link} was provided again`);
  const ref = await runCollected(runBatchJob, clickstreamJob(), input, { seed: SEED, secrets, chunkBytes: 512, workers: 1 });
  assert.equal(r.encrypted, ref.encrypted);
  assert.equal(r.keys, ref.keys);
  assert.deepEqual(r.derived, ref.derived);
  assert.deepEqual(sorted(new Map(r.result.summary.keyUses)), sorted(cellsPerKey(r.encrypted, records(input))));
  assert.equal(r.result.summary.keysUsed, provided.size);
});

test('answerCache must be a non-negative integer', async () => {
  await assert.rejects(runBatchJob(clickstreamJob(), { source: clickstream(10, 2), answerCache: -1, secrets }), (e) => e.code === 'INVALID_CONFIG' && /answerCache/.test(e.message));
  await assert.rejects(runBatchJob(clickstreamJob(), { source: clickstream(10, 2), answerCache: 1.5, secrets }), (e) => e.code === 'INVALID_CONFIG' && /answerCache/.test(e.message));
});

test('keyCache must be a positive integer', async () => {
  await assert.rejects(runBatchJob(clickstreamJob(), { source: clickstream(10, 2), keyCache: 0, secrets }), (e) => e.code === 'INVALID_CONFIG' && /keyCache/.test(e.message));
});

test('keyCache 2 with a KEK: encrypted keysets listed once; `keylink decrypt --keys --kek` decrypts', async () => {
  const dir = tmp();
  const kek = kekKeyset();
  const kekPath = join(dir, 'kek.json');
  writeFileSync(kekPath, kek.json);
  const input = vector('clickstream_dirty.csv');
  writeFileSync(join(dir, 'events.csv'), input);
  const store = SqliteKeyStore.open(join(dir, 'k.db'), { kek: kek.json });
  const out = await runCollected(runBatchJob, clickstreamJob(), input, { secrets, chunkBytes: 1024, keyCache: 2, keyStore: store });
  store.close();
  const keys = records(out.keys);
  assert.equal(new Set(keys.map((k) => k.keyLink)).size, keys.length);
  assert.equal(keys.length, out.result.summary.keysUsed);
  for (const k of keys) assert.ok(JSON.parse(k.encryptionKey).encryptedKeyset);
  writeFileSync(join(dir, 'keys.csv'), out.keys);
  writeFileSync(join(dir, 'enc.csv'), out.encrypted);
  await promisify(execFile)(CLI, ['decrypt', '--keys', join(dir, 'keys.csv'), '--kek', `file:${kekPath}`, join(dir, 'enc.csv'), join(dir, 'dec.csv'), '--overwrite']);
  const plain = records(input);
  const dec = records(readFileSync(join(dir, 'dec.csv')));
  assert.equal(dec.length, plain.length);
  for (const [i, x] of dec.entries()) for (const c of PII) assert.equal(x[c], plain[i][c]);
});

test('the key ledger keeps every key across growth (UUIDs and other links), uses merged', async () => {
  const { KeyLedger } = await import('../dist/key-ledger.js');
  const l = new KeyLedger();
  const links = Array.from({ length: 5000 }, (_, i) => (i % 10 === 9 ? `custom-${i}` : crypto.randomUUID()));
  for (const [i, link] of links.entries()) assert.equal(l.add(link, i % 3), true);
  for (const [i, link] of links.entries()) assert.equal(l.add(link, 1), false);
  assert.equal(l.size, links.length);
  for (const [i, link] of links.entries()) assert.equal(l.uses(link), (i % 3) + 1);
  const all = [...l.slices(777)];
  assert.ok(all.every((b) => b.length <= 777));
  assert.deepEqual(new Map(all.flat()), new Map(links.map((link, i) => [link, (i % 3) + 1])));
  // In the order keys were first recorded (UUIDs, then other links), whatever the hash slots.
  const uuids = links.filter((k) => !k.startsWith('custom-'));
  assert.deepEqual(all.flat().map(([k]) => k), [...uuids, ...links.filter((k) => k.startsWith('custom-'))]);
  assert.equal(l.uses(crypto.randomUUID()), 0);
});

test('key links as words and back: canonical UUID text for any words; other text refused', async () => {
  const { parseUuid, formatUuid } = await import('../dist/key-ledger.js');
  const w = new Uint32Array(8);
  for (const link of ['00000000-0000-4000-8000-000000000000', 'ffffffff-ffff-4fff-bfff-ffffffffffff', ...Array.from({ length: 2000 }, () => crypto.randomUUID())]) {
    assert.equal(parseUuid(link, w, 4), true);
    assert.equal(formatUuid(w, 4), link);
  }
  w.set([0x01234567, 0x89abcdef, 0xfedcba98, 0x76543210], 0);
  assert.equal(formatUuid(w, 0), '01234567-89ab-cdef-fedc-ba9876543210');
  for (const bad of ['', 'custom-1', '01234567-89AB-cdef-fedc-ba9876543210', '01234567_89ab-cdef-fedc-ba9876543210', '01234567-89ab-cdef-fedc-ba98765432100']) {
    assert.equal(parseUuid(bad, w, 0), false, bad);
  }
});

test('the table of keys given finds keys by the engine jobs\' request ids, across growth; bounded; custom links not kept', async () => {
  await initKeylinkNode();
  const { GivenKeys } = await import('../dist/given-keys.js');
  // The engine computes the ids: the same (value, window) gives the same id in every engine job of a job.
  const idKey = new Uint8Array(16).fill(7);
  const ids = (values, windows) => {
    const j = new Job(JSON.stringify(clickstreamJob()), {}, { 'env:MASK_SEED': 'pepper' }, new Uint8Array(32).fill(values.length % 250));
    j.setRequestIdKey(idKey);
    const header = 'event_id,session_id,timestamp,consent,email,customer_id,ip_address,page,product_sku,price,country\n';
    const rows = values.map((v, i) => `${i},${v},${new Date(windows[i] * 86_400_000).toISOString()},[1],a@b.c,C1,10.0.0.1,/,SKU,1.00,NL\n`);
    j.push(new TextEncoder().encode(header + rows.join('')));
    const r = j.keyRequestsPacked();
    j.free();
    return r;
  };
  const n = 3000;
  const values = Array.from({ length: n }, (_, i) => `sess-${i % 1500}`);
  const windows = Array.from({ length: n }, (_, i) => 20000 + Math.floor(i / 1500));
  const r = ids(values, windows);
  assert.equal(r.windows.length, n);
  assert.equal(r.ids.length, 4 * n);
  const again = ids(values.slice(0, 10), windows.slice(0, 10));
  assert.deepEqual(again.ids, r.ids.subarray(0, 40), 'another engine job, another seed: the same ids');
  const g = new GivenKeys(10_000, 32);
  const material = new Uint8Array(32 * n).map((_, i) => i % 251);
  for (let i = 0; i < n; i++) g.put(r.ids, i, r.links[i], 1 + i, material, 32 * i, i % 5);
  g.put(r.ids, 0, '00000000-0000-4000-8000-000000000000', 9, material, 0, 0); // already held: kept as it was
  assert.equal(g.size, n);
  for (let i = 0; i < n; i++) {
    const s = g.slot(r.ids, i);
    assert.ok(s >= 0, `key ${i}`);
    assert.deepEqual([g.link(s), g.keyId(s), g.usesBefore(s)], [r.links[i], 1 + i, i % 5]);
    const m = new Uint8Array(32);
    g.copyMaterial(s, m, 0);
    assert.deepEqual(m, material.subarray(32 * i, 32 * i + 32));
  }
  // A custom store's link is not kept (asked for again); a full table forgets everything.
  const small = new GivenKeys(100, 32);
  small.put(r.ids, 0, 'custom-link-1', 1, material, 0, 0);
  assert.equal(small.slot(r.ids, 0), -1);
  for (let i = 0; i < 100; i++) small.put(r.ids, i, r.links[i], 1, material, 0, 0);
  assert.equal(small.size, 100);
  small.put(r.ids, 100, r.links[100], 1, material, 0, 0);
  assert.equal(small.size, 1, 'forgot the 100 it held, then took the new one');
  assert.equal(small.slot(r.ids, 0), -1);
  assert.ok(small.slot(r.ids, 100) >= 0);
  assert.equal(new GivenKeys(0, 32).slot(r.ids, 0), -1);
});
