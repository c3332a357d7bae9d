// The demo page: runs a keylink job entirely in the browser.
import { runBatchJob, IndexedDbKeyStore } from '../dist/browser.js';

const $ = (id) => document.getElementById(id);
const log = (line) => { $('log').textContent += line + '\n'; };
let controller;

/** The job from the form, when no job file is picked. */
function jobFromForm(csvName) {
  const pii = Object.fromEntries($('pii').value.split(',').map((s) => s.trim()).filter(Boolean).map((s) => {
    const [col, level] = s.split(':');
    return [col.trim(), Number(level ?? 1)];
  }));
  const job = {
    data_contract: { ref: 'demo/browser/1.0.0', key_field: $('keyField').value.trim(), pii_fields: pii },
    source_data: { file_name: csvName },
    consent: { default_consent_levels: [] },
    encryption: { batch_job_group_id: $('group').value.trim() || undefined,
      timestamp_config: { field: $('tsField').value.trim(), format: $('tsFormat').value.trim() } },
    derived_data: $('derivedLevels').value.split(';').map((s) => s.trim()).filter(Boolean)
      .map((s) => ({ consent_levels: s.split(',').map(Number) })),
  };
  if ($('consentField').value.trim()) job.consent.consent_level_extractor = { field: $('consentField').value.trim() };
  return job;
}

/** A WritableStream into memory, turned into a download link at the end. */
function memoryOutput() {
  const parts = [];
  return { parts, stream: new WritableStream({ write: (chunk) => { parts.push(chunk); } }) };
}


$('form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const csv = $('csv').files[0];
  if (!csv) return;
  const jobFile = $('jobfile').files[0];
  const job = jobFile ? await jobFile.text() : jobFromForm(csv.name);
  $('downloads').replaceChildren();
  $('status').className = '';
  $('run').disabled = true;
  $('stop').disabled = false;
  controller = new AbortController();
  window.keylinkDemo = { done: false };
  const store = await IndexedDbKeyStore.open({ name: 'keylink-demo' });
  const parsed = typeof job === 'string' ? JSON.parse(job) : job;
  const derivedCount = (parsed.derived_data ?? parsed.derivedData ?? []).length;
  const outputs = { encrypted: memoryOutput(), keys: memoryOutput(), derived: Array.from({ length: derivedCount }, memoryOutput) };
  try {
    const result = await runBatchJob(job, {
      source: csv,
      encrypted: outputs.encrypted.stream,
      keys: outputs.keys.stream,
      derived: outputs.derived.map((d) => d.stream),
      keyStore: store,
      signal: controller.signal,
      heartbeatMs: 200,
      chunkBytes: 1 << 20,
      onState: (e) => {
        $('status').textContent = `${e.state}${e.message ? ': ' + e.message : ''}`;
        if (e.bytes !== undefined) $('progress').value = csv.size ? e.bytes / csv.size : 1;
        log(`${new Date(e.at).toISOString()} ${e.state} ${e.message}`);
      },
    });
    const stem = csv.name.replace(/\.[^.]*$/, '');
    const links = [
      ['encrypted', `${stem}-encrypted.csv`, outputs.encrypted.parts],
      ['keys', `${stem}-keys.csv`, outputs.keys.parts],
      ...outputs.derived.map((d, i) => [`derived-${i}`, `${stem}-derived-${i}.csv`, d.parts]),
    ];
    for (const [id, name, parts] of links) {
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob(parts, { type: 'text/csv' }));
      a.download = name;
      a.id = `download-${id}`;
      a.textContent = `Download ${name}`;
      const li = document.createElement('li');
      li.append(a);
      $('downloads').append(li);
    }
    $('progress').value = 1;
    window.keylinkDemo = { done: true, summary: result.summary, states: result.states };
  } catch (e) {
    $('status').className = 'error';
    $('status').textContent = `${e.code ?? 'ERROR'}: ${e.message}`;
    window.keylinkDemo = { done: true, error: { code: e.code, message: e.message } };
  } finally {
    store.close();
    $('run').disabled = false;
    $('stop').disabled = true;
  }
});
$('stop').addEventListener('click', () => controller?.abort());
