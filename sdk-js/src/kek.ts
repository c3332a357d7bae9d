/**
 * Key-encryption keys (KEKs): a Tink AES-256-GCM key that wraps key material
 * at rest (the SQLite store) and encrypts the keys output as Tink *encrypted
 * keysets*, exactly as the `keylink` CLI does with `--kek`
 * (`host/src/keystore/mod.rs` `Kek`, `core/src/tink.rs`
 * `encrypted_keyset_json`). Environment-neutral: WebCrypto only, no Node
 * APIs, so it works in browsers and edge runtimes too.
 *
 * Formats (a contract with the Rust host):
 * - A KEK is given as a Tink JSON keyset holding exactly one enabled
 *   `AesGcmKey` (32 bytes) with output prefix TINK.
 * - An encrypted keyset (one row of the keys output) is
 *   `{"encryptedKeyset":"<base64>","keysetInfo":{"primaryKeyId":ID,"keyInfo":[{"typeUrl":URL,"status":"ENABLED","keyId":ID,"outputPrefixType":"TINK"}]}}`
 *   where `<base64>` is the Tink AEAD ciphertext
 *   `0x01 ‖ KEK key id (4 bytes BE) ‖ nonce (12 random bytes) ‖ AES-256-GCM(binary Keyset proto) ‖ tag (16)`
 *   with empty associated data: what Tink's
 *   `KeysetHandle.write(writer, masterKeyAead)` writes and
 *   `json_proto_keyset_format.parse_encrypted(json, kek, b"")` reads.
 *
 * **Security:** key material is never part of an error message, and a
 * {@link Kek} does not expose its material (not even to `console.log`).
 * @packageDocumentation
 */
import { KeylinkError, KeyStoreError } from './errors.js';
import type { Cipher } from './types.js';

const TYPE_URL: Record<Cipher, string> = {
  'aes-256-gcm': 'type.googleapis.com/google.crypto.tink.AesGcmKey',
  'aes-256-siv': 'type.googleapis.com/google.crypto.tink.AesSivKey',
};
const KEY_LEN: Record<Cipher, number> = { 'aes-256-gcm': 32, 'aes-256-siv': 64 };
/** Field number of the key bytes in `AesGcmKey` (3) / `AesSivKey` (2). */
const KEY_FIELD: Record<Cipher, number> = { 'aes-256-gcm': 3, 'aes-256-siv': 2 };
const STATUS: Record<string, number> = { UNKNOWN_STATUS: 0, ENABLED: 1, DISABLED: 2, DESTROYED: 3 };
const PREFIX: Record<string, number> = { UNKNOWN_PREFIX: 0, TINK: 1, LEGACY: 2, RAW: 3, CRUNCHY: 4 };
const STATUS_ENABLED = 1;
const PREFIX_TINK = 1;
const KEY_MATERIAL_SYMMETRIC = 2;

/** One key of a Tink keyset. */
interface TinkKey {
  keyId: number;
  cipher: Cipher;
  material: Uint8Array;
}

// ---- Base64 (standard alphabet, padded; strict, as the Rust `base64` STANDARD engine)

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** @internal Standard padded Base64 of `bytes`. */
export function base64Encode(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i + 1 === bytes.length) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + '==';
  } else if (i + 2 === bytes.length) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + '=';
  }
  return out;
}

/** @internal Decodes standard padded Base64; undefined if it is not canonical Base64. */
export function base64Decode(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0) return undefined;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    const last = i + 4 === text.length;
    const v = [0, 0, 0, 0];
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      if (last && j >= 4 - pad) {
        if (c !== 61 /* = */) return undefined;
        continue;
      }
      const x = c < 128 ? B64_INDEX[c] : -1;
      if (x < 0) return undefined;
      v[j] = x;
    }
    const n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    // Canonical: the bits a padded group does not use must be zero.
    if (last && ((pad === 2 && (n & 0xffff) !== 0) || (pad === 1 && (n & 0xff) !== 0))) return undefined;
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 0xff;
    if (o < out.length) out[o++] = n & 0xff;
  }
  return out;
}

// ---- A minimal protobuf wire-format reader (as core/src/tink.rs)

type ProtoValue = { varint: number } | { bytes: Uint8Array } | { fixed: true };

/** Every field of one message; undefined when the bytes are not a valid message. */
function protoFields(bytes: Uint8Array): [number, ProtoValue][] | undefined {
  const out: [number, ProtoValue][] = [];
  let at = 0;
  const varint = (): number | undefined => {
    let v = 0;
    for (let i = 0; i < 10; i++) {
      if (at >= bytes.length) return undefined;
      const b = bytes[at++];
      // The 10th byte may only carry the top bit of a u64.
      if (i === 9 && b > 1) return undefined;
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    return undefined;
  };
  while (at < bytes.length) {
    const tag = varint();
    if (tag === undefined) return undefined;
    const number = Math.floor(tag / 8);
    if (number === 0) return undefined;
    switch (tag % 8) {
      case 0: {
        const v = varint();
        if (v === undefined) return undefined;
        out.push([number, { varint: v }]);
        break;
      }
      case 1:
      case 5: {
        const n = tag % 8 === 1 ? 8 : 4;
        if (at + n > bytes.length) return undefined;
        at += n;
        out.push([number, { fixed: true }]);
        break;
      }
      case 2: {
        const len = varint();
        if (len === undefined || at + len > bytes.length) return undefined;
        out.push([number, { bytes: bytes.subarray(at, at + len) }]);
        at += len;
        break;
      }
      default:
        return undefined; // groups (3, 4) are deprecated and not in Tink's protos
    }
  }
  return out;
}

// ---- Tink keysets

const invalidKek = (message: string) => new KeyStoreError('INVALID_KEK', `invalid key-encryption key: ${message}`);

/** A field under Tink's camelCase name or the proto's snake_case name. */
function field(o: Record<string, unknown>, camel: string, snake: string): unknown {
  return Object.prototype.hasOwnProperty.call(o, camel) ? o[camel] : Object.prototype.hasOwnProperty.call(o, snake) ? o[snake] : undefined;
}

function enumField(o: Record<string, unknown>, camel: string, snake: string, path: string, names: Record<string, number>): number {
  const v = field(o, camel, snake);
  if (typeof v === 'string') {
    if (!Object.prototype.hasOwnProperty.call(names, v)) throw invalidKek(`${path} has an unknown value`);
    return names[v];
  }
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw invalidKek(`${path} is not a valid enum number`);
    return v;
  }
  if (v === undefined) throw invalidKek(`${path} is missing`);
  throw invalidKek(`${path} is not a string`);
}

/** A `uint32` key id: a JSON number or a decimal string; negative 32-bit ids (old Tink Java) read as the same bits. */
function jsonKeyId(v: unknown, path: string): number {
  if (v === undefined) throw invalidKek(`${path} is missing`);
  let n: number | undefined;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string' && /^[+-]?\d+$/.test(v)) n = Number(v);
  let id: number | undefined;
  if (n !== undefined && n >= 0 && n <= 0xffffffff) id = n;
  else if (n !== undefined && n < 0 && n >= -0x80000000) id = n >>> 0;
  if (id === undefined) throw invalidKek(`${path} is not a 32-bit unsigned integer`);
  if (id === 0) throw invalidKek(`${path} is 0; key ids must be non-zero`);
  return id;
}

/** A key from its serialized `AesGcmKey` / `AesSivKey` proto. */
function keyFromProto(cipher: Cipher, keyId: number, proto: Uint8Array, at: string): TinkKey {
  const typeName = cipher === 'aes-256-gcm' ? 'AesGcmKey' : 'AesSivKey';
  const malformed = () => invalidKek(`${at}: the ${typeName} proto is malformed`);
  const fields = protoFields(proto);
  if (!fields) throw malformed();
  let version = 0;
  let material: Uint8Array | undefined;
  for (const [n, v] of fields) {
    if (n === 1 && 'varint' in v) version = v.varint;
    else if (n === KEY_FIELD[cipher] && 'bytes' in v) material = v.bytes;
    else if (n === 1 || n === KEY_FIELD[cipher]) throw malformed();
  }
  if (version !== 0) throw invalidKek(`${at}: ${typeName} version ${version} is not supported (only 0)`);
  if (!material) throw invalidKek(`${at}: the ${typeName} has no key value`);
  if (material.length !== KEY_LEN[cipher]) {
    throw invalidKek(
      cipher === 'aes-256-gcm'
        ? `${at}: AesGcmKey is ${material.length} bytes; only AES-256 (32-byte keys) is supported`
        : `${at}: AesSivKey is ${material.length} bytes; only AES-256-SIV (64-byte keys) is supported`,
    );
  }
  return { keyId, cipher, material: material.slice() };
}

/**
 * Every enabled AES-GCM / AES-SIV key with TINK prefix of a Tink JSON keyset,
 * as `TinkKey::from_keyset_json` reads them (camelCase or snake_case field
 * names, enums as names or numbers; other keys are skipped).
 */
function keysOfKeysetJson(json: string): TinkKey[] {
  let root: unknown;
  try {
    root = JSON.parse(json);
  } catch {
    // JSON.parse's message quotes the input: never pass it on.
    throw invalidKek('the keyset is not valid JSON');
  }
  if (typeof root !== 'object' || root === null || Array.isArray(root)) throw invalidKek('the keyset is not a JSON object');
  const list = field(root as Record<string, unknown>, 'key', 'key');
  if (list === undefined) throw invalidKek('the keyset has no `key` list');
  if (!Array.isArray(list)) throw invalidKek('the keyset `key` is not a list');
  const out: TinkKey[] = [];
  list.forEach((key: unknown, i) => {
    const at = (what: string) => `key[${i}]${what}`;
    if (typeof key !== 'object' || key === null || Array.isArray(key)) throw invalidKek(`${at('')} is not an object`);
    const k = key as Record<string, unknown>;
    const status = enumField(k, 'status', 'status', at('.status'), STATUS);
    const prefix = enumField(k, 'outputPrefixType', 'output_prefix_type', at('.outputPrefixType'), PREFIX);
    const keyId = jsonKeyId(field(k, 'keyId', 'key_id'), at('.keyId'));
    const data = field(k, 'keyData', 'key_data');
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw invalidKek(`${at('.keyData')} is missing or not an object`);
    const d = data as Record<string, unknown>;
    const typeUrl = field(d, 'typeUrl', 'type_url');
    if (typeof typeUrl !== 'string') throw invalidKek(`${at('.keyData.typeUrl')} is missing or not a string`);
    const value = field(d, 'value', 'value');
    if (typeof value !== 'string') throw invalidKek(`${at('.keyData.value')} is missing or not a string`);
    if (status !== STATUS_ENABLED || prefix !== PREFIX_TINK) return;
    const cipher = (Object.keys(TYPE_URL) as Cipher[]).find((c) => TYPE_URL[c] === typeUrl);
    if (!cipher) return;
    const proto = base64Decode(value);
    if (!proto) throw invalidKek(`${at('.keyData.value')} is not valid Base64`);
    out.push(keyFromProto(cipher, keyId, proto, at('')));
  });
  if (out.length === 0) throw invalidKek('the keyset holds no usable key');
  return out;
}

const TYPE_URL_BYTES: Record<Cipher, Uint8Array> = {
  'aes-256-gcm': new TextEncoder().encode(TYPE_URL['aes-256-gcm']),
  'aes-256-siv': new TextEncoder().encode(TYPE_URL['aes-256-siv']),
};

const varintLen = (v: number) => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5);

/**
 * The binary `Keyset` proto holding `key` as its one, primary key, byte for
 * byte `TinkKey::keyset_proto` (proto3 defaults omitted):
 * `Keyset { primary_key_id = 1; key = 2 { key_data = 1 { type_url = 1; value = 2 <AesGcmKey/AesSivKey { key_value }>;
 * key_material_type = 3 (SYMMETRIC) }; status = 2 (ENABLED); key_id = 3; output_prefix_type = 4 (TINK) } }`.
 * Written straight into one buffer (one allocation per key).
 */
function keysetProto(key: TinkKey): Uint8Array {
  const url = TYPE_URL_BYTES[key.cipher];
  const id = key.keyId;
  const keyProto = 1 + varintLen(key.material.length) + key.material.length;
  const keyData = 1 + varintLen(url.length) + url.length + 1 + varintLen(keyProto) + keyProto + 2;
  const k = 1 + varintLen(keyData) + keyData + 2 + 1 + varintLen(id) + 2;
  const out = new Uint8Array(1 + varintLen(id) + 1 + varintLen(k) + k);
  let at = 0;
  const varint = (v: number) => {
    while (v >= 0x80) {
      out[at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    out[at++] = v;
  };
  const bytes = (b: Uint8Array) => {
    varint(b.length);
    out.set(b, at);
    at += b.length;
  };
  out[at++] = 0x08; // Keyset.primary_key_id
  varint(id);
  out[at++] = 0x12; // Keyset.key
  varint(k);
  out[at++] = 0x0a; // Key.key_data
  varint(keyData);
  out[at++] = 0x0a; // KeyData.type_url
  bytes(url);
  out[at++] = 0x12; // KeyData.value
  varint(keyProto);
  out[at++] = (KEY_FIELD[key.cipher] << 3) | 2; // AesGcmKey.key_value (3) / AesSivKey.key_value (2)
  bytes(key.material);
  out[at++] = 0x18; // KeyData.key_material_type
  out[at++] = KEY_MATERIAL_SYMMETRIC;
  out[at++] = 0x10; // Key.status
  out[at++] = STATUS_ENABLED;
  out[at++] = 0x18; // Key.key_id
  varint(id);
  out[at++] = 0x20; // Key.output_prefix_type
  out[at++] = PREFIX_TINK;
  return out;
}

// ---- The KEK

/** Material of every Kek, out of reach of callers and of `console.log`. */
const MATERIAL = new WeakMap<Kek, Uint8Array>();
/** The WebCrypto key of a Kek, imported on first use. */
const CRYPTO_KEYS = new WeakMap<Kek, Promise<CryptoKey>>();

/**
 * A key-encryption key: one Tink AES-256-GCM key. Give it to
 * `SqliteKeyStore.open(path, { kek })` (key material wrapped at rest, the
 * CLI's `--kek` format) and a job writes its keys output as Tink encrypted
 * keysets under it; or name it in the job file as `encryption.kek`.
 *
 * **Security:** the material cannot be read back from the object; only
 * {@link Kek.keyId} is visible.
 */
export class Kek {
  /** The Tink key id of the KEK (what the store's `meta.kek_key_id` and every wrapped value name). */
  readonly keyId: number;

  private constructor(keyId: number, material: Uint8Array) {
    this.keyId = keyId;
    MATERIAL.set(this, material);
  }

  /**
   * A KEK from a Tink JSON keyset holding exactly one enabled AES-256-GCM key
   * with output prefix TINK (e.g. written by Tinkey or by Tink's
   * `json_proto_keyset_format.serialize`), as the CLI's `--kek` reads it.
   * @param keyset - the keyset JSON, as text or UTF-8 bytes
   * @throws {@link KeyStoreError} `INVALID_KEK` naming what is wrong (never key bytes)
   */
  static fromKeysetJson(keyset: string | Uint8Array): Kek {
    let json: string;
    if (typeof keyset === 'string') json = keyset;
    else {
      try {
        json = new TextDecoder('utf-8', { fatal: true }).decode(keyset);
      } catch {
        throw invalidKek('the keyset is not UTF-8');
      }
    }
    const keys = keysOfKeysetJson(json);
    if (keys.length > 1) throw invalidKek('the keyset holds more than one key; a KEK keyset must hold exactly one');
    const [key] = keys;
    // SIV is deterministic: wrapping two equal keys would show that they are equal.
    if (key.cipher !== 'aes-256-gcm') throw invalidKek(`a KEK must be an aes-256-gcm key, not ${key.cipher}`);
    return new Kek(key.keyId, key.material);
  }

  /** `Kek(key id N)`: never the material. */
  toString(): string {
    return `Kek(key id ${this.keyId})`;
  }

  /** `{ keyId }`: never the material. */
  toJSON(): { keyId: number } {
    return { keyId: this.keyId };
  }
}

/** @internal The raw material of a KEK (32 bytes). */
export function kekMaterial(kek: Kek): Uint8Array {
  const m = MATERIAL.get(kek);
  if (!m) throw new KeyStoreError('INVALID_KEK', 'not a key-encryption key made by Kek.fromKeysetJson');
  return m;
}

/** @internal True when `a` and `b` are the same key (id and material). */
export function sameKek(a: Kek, b: Kek): boolean {
  const x = kekMaterial(a);
  const y = kekMaterial(b);
  if (a.keyId !== b.keyId || x.length !== y.length) return false;
  let d = 0;
  for (let i = 0; i < x.length; i++) d |= x[i] ^ y[i];
  return d === 0;
}

function cryptoKeyOf(kek: Kek): Promise<CryptoKey> {
  let k = CRYPTO_KEYS.get(kek);
  if (!k) {
    const subtle = globalThis.crypto?.subtle;
    if (!subtle) throw new KeylinkError('UNSUPPORTED', 'encrypting the keys output with a KEK needs WebCrypto (crypto.subtle)', { startError: true });
    k = subtle.importKey('raw', kekMaterial(kek) as Uint8Array<ArrayBuffer>, { name: 'AES-GCM' }, false, ['encrypt']);
    CRYPTO_KEYS.set(kek, k);
  }
  return k;
}

/**
 * @internal AES-256-GCM under a KEK with empty associated data: `ciphertext ‖
 * tag (16)` of `plaintext`. WebCrypto by default ({@link webCryptoSeal});
 * Node passes a synchronous node:crypto one (WebCrypto there costs a thread
 * pool round trip per call, ~20 times the cipher itself).
 */
export type KekSeal = (kek: Kek, nonce: Uint8Array, plaintext: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** @internal The WebCrypto {@link KekSeal} (every runtime with `crypto.subtle`). */
export const webCryptoSeal: KekSeal = async (kek, nonce, plaintext) =>
  new Uint8Array(
    await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv: nonce as Uint8Array<ArrayBuffer>, tagLength: 128 },
      await cryptoKeyOf(kek),
      plaintext as Uint8Array<ArrayBuffer>,
    ),
  );

/** @internal Makes sure `seal` works with the KEK (so a failure is a start error, not a failure mid-job). */
export async function kekReady(kek: Kek, seal: KekSeal = webCryptoSeal): Promise<void> {
  await seal(kek, new Uint8Array(12), new Uint8Array(0));
}

/** The 5-byte TINK output prefix of a key id. */
function outputPrefix(keyId: number): Uint8Array {
  return Uint8Array.of(1, keyId >>> 24, (keyId >>> 16) & 0xff, (keyId >>> 8) & 0xff, keyId & 0xff);
}

/** Tink's JSON `EncryptedKeyset` of `key` from the sealed body (`ciphertext ‖ tag`) of its Keyset proto. */
function encryptedKeysetText(kek: Kek, key: TinkKey, nonce: Uint8Array, body: Uint8Array): string {
  const sealed = new Uint8Array(5 + 12 + body.length);
  sealed.set(outputPrefix(kek.keyId), 0);
  sealed.set(nonce, 5);
  sealed.set(body, 17);
  return (
    `{"encryptedKeyset":"${base64Encode(sealed)}","keysetInfo":{"primaryKeyId":${key.keyId},"keyInfo":[{` +
    `"typeUrl":"${TYPE_URL[key.cipher]}","status":"ENABLED","keyId":${key.keyId},"outputPrefixType":"TINK"}]}}`
  );
}

/** The raw text of every field of the complete records of `text`, and where the last complete record ends. */
function csvRecords(text: string): { records: { fields: string[]; end: string }[]; consumed: number } {
  const records: { fields: string[]; end: string }[] = [];
  let i = 0;
  let consumed = 0;
  const n = text.length;
  outer: while (i < n) {
    const fields: string[] = [];
    for (;;) {
      const start = i;
      if (text[i] === '"') {
        i++;
        for (;;) {
          const q = text.indexOf('"', i);
          if (q < 0) break outer; // the rest of the record comes with the next bytes
          if (text[q + 1] === '"') {
            i = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
      } else {
        while (i < n && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') i++;
      }
      fields.push(text.slice(start, i));
      if (text[i] === ',') {
        i++;
        continue;
      }
      break;
    }
    let end: string;
    if (text.startsWith('\r\n', i)) end = '\r\n';
    else if (text[i] === '\n') end = '\n';
    else if (i >= n || (text[i] === '\r' && i + 1 >= n)) break; // incomplete: wait for more
    else throw new KeylinkError('STATE', 'the keys output is not in the expected form');
    i += end.length;
    records.push({ fields, end });
    consumed = i;
  }
  return { records, consumed };
}

/** A plain keyset exactly as the engine writes it (`TinkKey::to_keyset_json`). */
const ENGINE_KEYSET =
  /^\{"primaryKeyId":(\d+),"key":\[\{"keyData":\{"typeUrl":"([^"]+)","value":"([A-Za-z0-9+/=]+)","keyMaterialType":"SYMMETRIC"\},"status":"ENABLED","keyId":(\d+),"outputPrefixType":"TINK"\}\]\}$/;

/** The one key of a plain keyset of the engine's keys output, or undefined. */
function engineKeyset(json: string): TinkKey | undefined {
  const m = ENGINE_KEYSET.exec(json);
  try {
    if (m && m[1] === m[4]) {
      const cipher = (Object.keys(TYPE_URL) as Cipher[]).find((c) => TYPE_URL[c] === m[2]);
      const proto = base64Decode(m[3]);
      if (cipher && proto) return keyFromProto(cipher, jsonKeyId(m[1], 'keyId'), proto, 'key[0]');
    }
    // Any other spelling of one key (not what this engine writes, but valid).
    const keys = keysOfKeysetJson(json);
    return keys.length === 1 ? keys[0] : undefined;
  } catch {
    return undefined;
  }
}

const unquote = (raw: string) => (raw.startsWith('"') ? raw.slice(1, -1).replaceAll('""', '"') : raw);
const quote = (value: string) => `"${value.replaceAll('"', '""')}"`;

/**
 * @internal Rewrites the complete records of a keys output (as the engine
 * writes it: `keyLink,encryptionKey,policyId,expiresAt`, any quote style and
 * line end) with each `encryptionKey` as an encrypted keyset under `kek`;
 * every other byte is kept. Returns the rewritten text and the incomplete
 * tail to carry into the next call.
 */
export async function encryptKeysCsv(text: string, kek: Kek, seal: KekSeal = webCryptoSeal): Promise<{ out: string; rest: string }> {
  const { records, consumed } = csvRecords(text);
  const bad = () => new KeylinkError('STATE', 'the keys output is not in the expected form');
  // Fresh nonces from the platform's secure random source, 5,461 per call (its 64 KiB limit).
  const nonces = new Uint8Array(12 * records.length);
  for (let at = 0; at < nonces.length; at += 65_532) crypto.getRandomValues(nonces.subarray(at, Math.min(nonces.length, at + 65_532)));
  let pending = false;
  const rows: (string | Promise<string>)[] = records.map(({ fields, end }, i) => {
    if (fields.length !== 4) throw bad();
    const keyset = unquote(fields[1]);
    if (keyset === 'encryptionKey') return fields.join(',') + end; // the header
    const key = engineKeyset(keyset);
    if (!key) throw bad();
    const proto = keysetProto(key);
    key.material.fill(0);
    const nonce = nonces.subarray(12 * i, 12 * i + 12);
    // The JSON holds quotes: quoted in both quote styles, as the CLI's encoder does.
    const row = (body: Uint8Array) => {
      proto.fill(0);
      return `${fields[0]},${quote(encryptedKeysetText(kek, key, nonce, body))},${fields[2]},${fields[3]}${end}`;
    };
    const body = seal(kek, nonce, proto);
    if (body instanceof Uint8Array) return row(body);
    pending = true;
    return body.then(row);
  });
  // No promise per row when sealing is synchronous (Node).
  return { out: (pending ? await Promise.all(rows) : (rows as string[])).join(''), rest: text.slice(consumed) };
}
