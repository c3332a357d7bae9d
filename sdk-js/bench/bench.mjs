// Benchmark (not a test): the Node SDK against the Python baseline of
// /work/shared/bench, in one run, on the generated clickstream.
//
//   node bench/bench.mjs [ROWS...]          (default: 1000000 5000000)
//
// For each size: generates the CSV (gen_clickstream.py), runs the baseline
// (baseline_py.py, peak RSS from /usr/bin/time or getrusage), then the SDK in
// a child Node process (SQLite key store, file outputs), and prints rows/s,
// the ratio to the baseline, and peak RSS of each.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const SDK = join(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH = process.env.KEYLINK_BENCH_DIR ?? '/work/shared/bench';
const sizes = process.argv.slice(2).map(Number).filter(Boolean);
if (!sizes.length) sizes.push(1_000_000, 5_000_000);

/** Runs a command, returning wall seconds and peak RSS (MB) of the child. */
function measure(cmd, args, opts = {}) {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  const kb = Number(r.stderr.trim().split('\n').pop());
  return { secs, rssMb: kb / 1024, stdout: r.stdout };
}

const JOB = {
  data_contract: { ref: 'acme/clickstream/1.0.0', key_field: 'session_id', pii_fields: { email: 1, ip_address: 1, customer_id: 2 } },
  source_data: { file_name: 'in.csv' },
  consent: { default_consent_levels: [], consent_level_extractor: { field: 'consent', field_patterns: { analytics: { consent_levels: [1] }, marketing: { consent_levels: [1, 2] } } } },
  encryption: { batch_job_group_id: 'bench', timestamp_config: { field: 'timestamp', format: 'iso8601' } },
  derived_data: [{ consent_levels: [1], consent_level_type: 'GRANULAR' }],
};

const child = `
import { runBatchJob, SqliteKeyStore } from 'keylink';
const [src, dir] = process.argv.slice(2);
const store = SqliteKeyStore.open(dir + '/keys.db');
const t0 = performance.now();
const r = await runBatchJob(${JSON.stringify(JOB)}, { source: src, encrypted: dir + '/enc.csv', keys: dir + '/keys.csv', derived: [dir + '/d.csv'], keyStore: store });
store.close();
console.log(JSON.stringify({ rows: r.summary.rowsWritten, keys: r.summary.keysUsed, ms: performance.now() - t0 }));
`;

if (!existsSync('/usr/bin/time')) throw new Error('needs /usr/bin/time (apt-get install time)');
console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} CPUs\n`);
console.log('rows      | input MB | baseline rows/s | baseline RSS | SDK rows/s | SDK RSS | ratio');
for (const n of sizes) {
  const dir = mkdtempSync(join(tmpdir(), 'keylink-bench-'));
  const csv = join(dir, 'in.csv');
  execFileSync('python3', [join(BENCH, 'gen_clickstream.py'), String(n), csv]);
  const mb = statSync(csv).size / 1e6;
  const base = measure('python3', [join(BENCH, 'baseline_py.py'), csv, join(dir, 'py')]);
  writeFileSync(join(SDK, 'bench', '.child.mjs'), child);
  const sdk = measure(process.execPath, [join(SDK, 'bench', '.child.mjs'), csv, dir]);
  const res = JSON.parse(sdk.stdout.trim().split('\n').pop());
  const baseRate = n / base.secs, sdkRate = res.rows / sdk.secs;
  console.log(`${String(n).padEnd(9)} | ${mb.toFixed(0).padStart(8)} | ${baseRate.toFixed(0).padStart(15)} | ${(base.rssMb.toFixed(0) + ' MB').padStart(12)} | ${sdkRate.toFixed(0).padStart(10)} | ${(sdk.rssMb.toFixed(0) + ' MB').padStart(7)} | ${(sdkRate / baseRate).toFixed(2)}x`);
  console.log(`          (SDK: ${res.keys} keys, job ${(res.ms / 1000).toFixed(1)} s of ${sdk.secs.toFixed(1)} s process wall time; baseline ${base.secs.toFixed(1)} s)`);
  rmSync(dir, { recursive: true, force: true });
}
rmSync(join(SDK, 'bench', '.child.mjs'), { force: true });
