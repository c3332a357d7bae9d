// Shared helpers of the JS tests: paths, a small RFC 4180 reader, jobs.
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SDK = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = join(SDK, '..');
export const VECTORS = join(ROOT, 'tests', 'vectors');
export const CLI = process.env.KEYLINK_CLI ?? join(ROOT, 'target', 'debug', 'keylink');

export const tmp = (name = 'keylink-js-') => mkdtempSync(join(tmpdir(), name));
export const vector = (name) => readFileSync(join(VECTORS, name));
export const vectorJob = (name) => JSON.parse(readFileSync(join(VECTORS, 'jobs', name), 'utf8'));

/** Parses CSV text (RFC 4180, any line end) into rows of fields. */
export function parseCsv(text, delimiter = ',') {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows = [];
  let row = [], field = '', quoted = false, i = 0, any = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += c; i++; continue;
    }
    if (c === '"') { quoted = true; any = true; i++; continue; }
    if (c === delimiter) { row.push(field); field = ''; any = true; i++; continue; }
    if (c === '\r' || c === '\n') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      i++;
      row.push(field); rows.push(row); row = []; field = ''; any = false; continue;
    }
    field += c; any = true; i++;
  }
  if (any || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** Rows as objects keyed by the header. */
export function records(text, delimiter = ',') {
  const [header, ...rows] = parseCsv(typeof text === 'string' ? text : new TextDecoder().decode(text), delimiter);
  return rows.map((r) => Object.fromEntries(header.map((h, i) => [h, r[i]])));
}

/** The clickstream job of the Rust tests (core/tests/common), as an object. */
export function clickstreamJob(encryption = {}) {
  return {
    data_contract: { ref: 'acme/clickstream/1.0.0', key_field: 'session_id',
      pii_fields: { email: 1, ip_address: 1, customer_id: 2 }, data_subject_field: 'customer_id' },
    source_data: { file_name: 'events.csv' },
    consent: { default_consent_levels: [], consent_level_extractor: { field: 'consent',
      field_patterns: { analytics: { consent_levels: [1] }, marketing: { consent_levels: [1, 2] } } } },
    encryption: { batch_job_group_id: 'g1', ...encryption, timestamp_config: { field: 'timestamp', format: 'iso8601' } },
    derived_data: [
      { consent_levels: [1], consent_level_type: 'GRANULAR',
        masked_fields: { hash_type: 'hmac-sha256', seed: 'env:MASK_SEED', fields: ['customer_id'] } },
      { consent_levels: [2], consent_level_type: 'CUMULATIVE' },
    ],
  };
}

/** A WritableStream collecting bytes; `.text()` and `.bytes()` after the job. */
export function collector() {
  const parts = [];
  let closed = false, aborted = false;
  const stream = new WritableStream({ write(c) { parts.push(c); }, close() { closed = true; }, abort() { aborted = true; } });
  return {
    stream,
    get closed() { return closed; },
    get aborted() { return aborted; },
    bytes: () => Buffer.concat(parts),
    text: () => Buffer.concat(parts).toString('utf8'),
  };
}

/** Runs a job with collected outputs; returns { result, encrypted, keys, derived[] } as text. */
export async function runCollected(runBatchJob, job, source, opts = {}) {
  const enc = collector(), keys = collector();
  const derived = (job.derived_data ?? []).map(() => collector());
  const result = await runBatchJob(job, { source, encrypted: enc.stream, keys: keys.stream, derived: derived.map((d) => d.stream), ...opts });
  return { result, encrypted: enc.text(), keys: keys.text(), derived: derived.map((d) => d.text()) };
}

const AES_GCM_KEY = 'type.googleapis.com/google.crypto.tink.AesGcmKey';

/**
 * A KEK as a Tink JSON keyset (one AES-256-GCM key, TINK prefix), as Tink
 * writes it: `{ json, keyId, material }`. Random unless given.
 */
export function kekKeyset({ keyId = 1 + randomInt(0xfffffffe), material = randomBytes(32), cipher = 'aes-256-gcm', extra = [] } = {}) {
  const siv = cipher === 'aes-256-siv';
  const proto = Buffer.concat([Buffer.from([siv ? 0x12 : 0x1a, material.length]), material]);
  const key = (id) => ({
    keyData: { typeUrl: siv ? AES_GCM_KEY.replace('AesGcmKey', 'AesSivKey') : AES_GCM_KEY, value: proto.toString('base64'), keyMaterialType: 'SYMMETRIC' },
    status: 'ENABLED', keyId: id, outputPrefixType: 'TINK',
  });
  const json = JSON.stringify({ primaryKeyId: keyId, key: [key(keyId), ...extra.map(key)] });
  return { json, keyId, material: Buffer.from(material) };
}

/** AES-256-GCM open of a Tink ciphertext `0x01 ‖ id ‖ nonce ‖ ct ‖ tag` under `kek` (node:crypto, independent of the SDK). */
export function tinkGcmOpen(kek, sealed, aad = Buffer.alloc(0)) {
  assert.equal(sealed[0], 1, 'TINK prefix');
  assert.equal(sealed.readUInt32BE(1), kek.keyId, 'KEK key id in the prefix');
  const d = createDecipheriv('aes-256-gcm', kek.material, sealed.subarray(5, 17));
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(17, sealed.length - 16)), d.final()]);
}

/** The exact shape of the CLI's encrypted keyset (core/src/tink.rs `encrypted_keyset_json`), checked; returns the decrypted Keyset proto. */
export function openEncryptedKeyset(kek, json, cipher = 'aes-256-gcm') {
  const o = JSON.parse(json);
  assert.deepEqual(Object.keys(o), ['encryptedKeyset', 'keysetInfo']);
  const id = o.keysetInfo.primaryKeyId;
  const url = AES_GCM_KEY.replace('AesGcmKey', cipher === 'aes-256-siv' ? 'AesSivKey' : 'AesGcmKey');
  assert.equal(json, `{"encryptedKeyset":"${o.encryptedKeyset}","keysetInfo":{"primaryKeyId":${id},"keyInfo":[{"typeUrl":"${url}","status":"ENABLED","keyId":${id},"outputPrefixType":"TINK"}]}}`);
  return { keyId: id, keyset: tinkGcmOpen(kek, Buffer.from(o.encryptedKeyset, 'base64')) };
}
