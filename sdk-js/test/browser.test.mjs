// A real browser: headless Chromium (Debian `chromium`, driven by
// playwright-core) opens the demo page, runs a job on a generated CSV with the
// IndexedDB key store, and the outputs are checked here (Google Tink decrypts
// them). Needs /usr/bin/chromium (scripts/test-js.sh installs it).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { extname, join, normalize } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { SDK, ROOT, tmp, records } from './helpers.mjs';

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
let server, origin, browser;

before(async () => {
  server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = await readFile(join(SDK, path));
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

/** A generated clickstream: n rows, 50 sessions over 3 days, some quoting. */
function generateCsv(n) {
  const rows = ['session_id,timestamp,consent,email,customer_id,ip_address,page'];
  for (let i = 0; i < n; i++) {
    const s = i % 50;
    const ts = new Date(Date.UTC(2026, 2, 1) + i * 97_000).toISOString();
    const consent = ['[]', '[1]', '"[1,2]"', '2'][i % 4];
    const page = i % 7 === 0 ? '"/search?q=a,b ""x"""' : `/p/${i % 13}`;
    rows.push(`sess-${s},${ts},${consent},user${s}@example.com,C${1000 + s},10.0.${s}.${i % 250},${page}`);
  }
  return rows.join('\n') + '\n';
}

async function runInPage(page, csv, job) {
  await page.goto(`${origin}/demo/index.html`);
  await page.setInputFiles('#csv', { name: 'clicks.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  if (job) await page.setInputFiles('#jobfile', { name: 'job.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(job)) });
  await page.click('#run');
  await page.waitForFunction(() => window.keylinkDemo?.done === true, null, { timeout: 60_000 });
  const state = await page.evaluate(() => window.keylinkDemo);
  // download every output as a user would (click the link), and read the saved file
  const downloads = {};
  for (const id of await page.$$eval('#downloads a', (as) => as.map((a) => a.id))) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.click(`#${id}`)]);
    downloads[id] = { name: download.suggestedFilename(), text: await readFile(await download.path(), 'utf8') };
  }
  return { state, downloads, status: await page.textContent('#status') };
}

test('the demo page runs a job in Chromium with the IndexedDB store; Tink decrypts its outputs; no data leaves the page', async () => {
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  const csv = generateCsv(20_000);
  const first = await runInPage(page, csv); // the form's job
  assert.deepEqual(errors, []);
  assert.equal(first.state.error, undefined, JSON.stringify(first.state.error));
  assert.match(first.status, /^FINISHED: Processed 20000 records/);
  const s = first.state.summary;
  assert.equal(s.rowsWritten, 20_000);
  assert.ok(s.keysCreated > 0 && s.keysCreated === s.keysUsed);
  const names = first.state.states.map((e) => e.state);
  assert.deepEqual([names[0], names[1], names.at(-1)], ['PENDING', 'STARTED', 'FINISHED']);
  assert.ok(names.includes('RUNNING'));
  assert.deepEqual(Object.keys(first.downloads).sort(), ['download-derived-0', 'download-derived-1', 'download-encrypted', 'download-keys']);
  assert.equal(first.downloads['download-keys'].name, 'clicks-keys.csv');
  const enc = records(first.downloads['download-encrypted'].text);
  assert.equal(enc.length, 20_000);
  const d0 = records(first.downloads['download-derived-0'].text);
  assert.equal(d0.length, s.derivedRows[0]);
  assert.ok(d0.every((r) => JSON.parse(r['strmMeta.consentLevels']).includes(1)));
  // independent check with Google Tink
  const dir = tmp();
  await writeFile(join(dir, 'keys.csv'), first.downloads['download-keys'].text);
  await writeFile(join(dir, 'enc.csv'), first.downloads['download-encrypted'].text);
  await writeFile(join(dir, 'plain.csv'), csv);
  const { stdout } = await promisify(execFile)('python3', [join(ROOT, 'tests', 'interop', 'tink_decrypt.py'), join(dir, 'keys.csv'), join(dir, 'enc.csv'), join(dir, 'plain.csv'), 'email,customer_id,ip_address', 'field-name']);
  assert.match(stdout, /tink decrypted 60000 cells/);

  // the IndexedDB store persists: a second run (now with a job file) reuses every key
  const job = {
    data_contract: { ref: 'demo/browser/1.0.0', key_field: 'session_id', pii_fields: { email: 1, customer_id: 2, ip_address: 1 } },
    source_data: { file_name: 'clicks.csv' },
    consent: { default_consent_levels: [], consent_level_extractor: { field: 'consent' } },
    encryption: { batch_job_group_id: 'browser-demo', timestamp_config: { field: 'timestamp', format: 'iso8601' } },
    derived_data: [{ consent_levels: [2], consent_level_type: 'CUMULATIVE' }],
  };
  const second = await runInPage(page, csv, job);
  assert.equal(second.state.summary.keysCreated, 0);
  assert.deepEqual(records(second.downloads['download-encrypted'].text).map((r) => r['strmMeta.keyLink']), enc.map((r) => r['strmMeta.keyLink']));
  // a bad job file is reported on the page with its code
  const bad = await runInPage(page, csv, { ...job, encryption: { ...job.encryption, cipher: 'rot13' } });
  assert.equal(bad.state.error.code, 'INVALID_CONFIG');
  assert.match(bad.status, /INVALID_CONFIG: .*encryption\.cipher/s);

  assert.ok(requests.length > 0 && requests.every((u) => u.startsWith(origin) || u.startsWith('blob:')), requests.filter((u) => !u.startsWith(origin)).join(' '));
  await context.close();
});
