/**
 * Running a batch job: lifecycle, the push/answer/drain loop over the wasm
 * engine, outputs committed only at the end. Environment-neutral: the entry
 * points (`index`, `browser`, `node`) supply how sources, outputs and secrets
 * are opened.
 * @packageDocumentation
 */
import { AbortError, KeylinkError, KeyStoreError, fromEngine } from './errors.js';
import type { JobFileInput } from './jobfile.js';
import { encryptKeysCsv, Kek, kekReady, sameKek, webCryptoSeal, type KekSeal } from './kek.js';
import { KeyLedger, type KeyUses } from './key-ledger.js';
import { Splitter } from './split.js';
import { GivenKeys } from './given-keys.js';
import { MemoryKeyStore } from './stores/memory.js';
import type { JobDescription, JobResult, JobState, KeyStore, KeyStoreSession, PackedKeys, PackedRequests, RunOptionsBase, StateEvent, Summary } from './types.js';
import { engineOrThrow } from './wasm-loader.js';

/** @internal An output being written: committed at the end, or aborted. */
export interface Sink {
  write(bytes: Uint8Array): Promise<void>;
  commit(): Promise<void>;
  abort(reason: unknown): Promise<void>;
}

/** @internal What an entry point supplies. */
export interface Environment<S, O> {
  /** Makes sure the engine is loaded. */
  ready(): Promise<void>;
  /** Contract files the job file names, by path. */
  contracts?(json: string): Promise<Record<string, string>>;
  /** Resolves an `env:`/`file:` reference, or undefined. */
  secret?(ref: string): Promise<Uint8Array | undefined>;
  /** AES-256-GCM under a KEK for the keys output (default: WebCrypto). */
  seal?: KekSeal;
  /** The input as chunks. */
  source(source: S | undefined, desc: JobDescription, signal?: AbortSignal): AsyncIterable<Uint8Array>;
  /** Opens one output; `which` is `keys`, `encrypted` or `derived[i]`. */
  sink(output: O | null | undefined, which: string, desc: JobDescription, opts: { overwrite: boolean }): Promise<Sink>;
  /** Parallel engine jobs (Node's worker threads), if the environment has them. */
  parallel?: { workers: number; start(r: PoolRequest): Promise<ParallelEngine> };
}

/** @internal What a job gives its parallel engine jobs. */
export interface PoolRequest {
  workers: number;
  json: string;
  contracts: Record<string, string>;
  secrets: Record<string, string | Uint8Array>;
  seed?: Uint8Array;
  keyCache: number;
  answerCache: number;
  chunkBytes: number;
  /** The header record as read. */
  header: Uint8Array;
  /** The source's delimiter (a byte), for cutting between records. */
  delimiter: number;
  /** The key of the engine jobs' request ids (`Job.setRequestIdKey`). */
  idKey: Uint8Array;
  /** Answers chunk `index`'s key requests (in columns; -1: an engine job's end); called one at a time. */
  answer(requests: PackedRequests, index: number): Promise<PackedKeys>;
  /** Writes chunk `index`'s outputs (-1: an engine job's end); called one at a time, in input order. */
  write(out: Drained, index: number): Promise<void>;
}

/** @internal Engine jobs that take the input after its header, in parallel. */
export interface ParallelEngine {
  /** Rows of the chunks written so far. */
  readonly rowsWritten: number;
  push(bytes: Uint8Array): Promise<void>;
  /** Ends the input; the summaries of the engine jobs (skipped rows in the file's numbers). */
  finish(): Promise<Summary[]>;
  terminate(): Promise<void>;
}

/** Codes of start failures that a retry cannot fix. */
const FINAL_START_CODES = new Set([
  'INVALID_CONFIG', 'SECRET', 'TARGET_EXISTS', 'UNSUPPORTED', 'MISSING_COLUMN', 'EMPTY_INPUT',
  'INVALID_KEK', 'KEK_MISMATCH', 'KEK_NOT_EXPECTED', 'KEK_REQUIRED',
]);

/**
 * Bytes per chunk (2 MiB): with worker threads, 1-2 MiB chunks peaked
 * 150-200 MB lower than 4 MiB ones on the 1M-row benchmark (fewer output
 * bytes in flight), at no measurable cost in time.
 */
const DEFAULT_CHUNK = 2 << 20;

/** @internal A sink that drops everything (an output the caller did not ask for). */
export const discard: Sink = { write: async () => {}, commit: async () => {}, abort: async () => {} };

/** @internal A sink over a Web `WritableStream`. */
export function streamSink(stream: WritableStream<Uint8Array>): Sink {
  const writer = stream.getWriter();
  return {
    async write(bytes) {
      if (bytes.length) await writer.write(bytes);
    },
    commit: () => writer.close(),
    abort: (reason) => writer.abort(reason).catch(() => {}),
  };
}

/**
 * @internal A keys output whose rows are rewritten with Tink encrypted
 * keysets under `kek` (the engine writes plain keysets; the CLI's host writes
 * encrypted ones with `--kek`, and so does this, in the same shape).
 */
export function encryptingKeysSink(inner: Sink, kek: Kek, seal: KekSeal = webCryptoSeal): Sink {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const encoder = new TextEncoder();
  let carry = '';
  return {
    async write(bytes) {
      const { out, rest } = await encryptKeysCsv(carry + decoder.decode(bytes, { stream: true }), kek, seal);
      carry = rest;
      if (out) await inner.write(encoder.encode(out));
    },
    async commit() {
      if (carry + decoder.decode() !== '') throw new KeylinkError('STATE', 'the keys output ended inside a record');
      await inner.commit();
    },
    abort: (reason) => inner.abort(reason),
  };
}

/**
 * @internal The KEK of a job's keys output: the job file's `encryption.kek`
 * (resolved through `secrets`, then the environment's `env:`/`file:`
 * reader; an inline value is the keyset itself), else the key store's KEK.
 * Both given: they must be the same key.
 */
export async function jobKek(
  ref: string | null,
  store: KeyStore,
  secrets: Record<string, string | Uint8Array>,
  resolve?: (ref: string) => Promise<Uint8Array | undefined>,
): Promise<Kek | null> {
  const storeKek = store.kek ?? null;
  if (ref === null) return storeKek;
  let value: string | Uint8Array | undefined;
  if (ref.startsWith('env:') || ref.startsWith('file:')) {
    value = secrets[ref] ?? (resolve ? await resolve(ref) : undefined);
    if (value === undefined) {
      throw new KeylinkError('SECRET', `encryption.kek: secret ${ref} was not provided (pass the KEK keyset JSON in \`secrets\`)`, { startError: true });
    }
  } else {
    value = ref; // inline: the keyset JSON itself
  }
  let kek: Kek;
  try {
    kek = Kek.fromKeysetJson(value);
  } catch (e) {
    const k = e as KeylinkError;
    throw new KeyStoreError(k.code ?? 'INVALID_KEK', `encryption.kek: ${k.message}`, undefined, { startError: true });
  }
  if (store.kek === null) {
    throw new KeyStoreError(
      'KEK_NOT_EXPECTED',
      `the job file names a key-encryption key (encryption.kek, key id ${kek.keyId}), but the key store was created without one (its key material is stored unwrapped)`,
      undefined,
      { startError: true },
    );
  }
  if (storeKek && !sameKek(kek, storeKek)) {
    throw new KeyStoreError(
      'KEK_MISMATCH',
      `the job file's key-encryption key (encryption.kek, key id ${kek.keyId}) is not the one the key store was opened with (key id ${storeKek.keyId})`,
      undefined,
      { startError: true },
    );
  }
  return kek;
}

/** @internal Chunks of any supported source. */
export async function* chunksOf(source: unknown, signal?: AbortSignal): AsyncIterable<Uint8Array> {
  // Views are checked by brand, not `instanceof`, so bytes from another realm work too.
  if (ArrayBuffer.isView(source)) {
    yield new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return;
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) source = source.stream();
  if (typeof ReadableStream !== 'undefined' && source instanceof ReadableStream) {
    const reader = (source as ReadableStream<Uint8Array>).getReader();
    const onAbort = () => reader.cancel(signal?.reason).catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      reader.releaseLock();
    }
  }
  if (source && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    yield* source as AsyncIterable<Uint8Array>;
    return;
  }
  throw new KeylinkError('UNSUPPORTED', 'unsupported source: give a ReadableStream, Blob, File, Uint8Array or async iterable of bytes', { startError: true });
}

/** The job file as JSON text. */
function jsonOf(config: JobFileInput): string {
  return typeof config === 'string' ? config : JSON.stringify(config);
}

/**
 * Validates a job file and describes it (outputs, group, cipher, secrets).
 * The engine must be initialised.
 * @param config - the job file (object or JSON text)
 * @param contracts - contract files by path, for `data_contract_file`
 * @throws {@link JobFileError} with every problem and its JSON path
 */
export function describeJob(config: JobFileInput, contracts?: Record<string, string>): JobDescription {
  try {
    return engineOrThrow().describeJob(jsonOf(config), contracts ?? {}) as JobDescription;
  } catch (e) {
    throw fromEngine(e);
  }
}

/** @internal The engine's Job class. */
type EngineJob = InstanceType<ReturnType<typeof engineOrThrow>['Job']>;
/** @internal What a drain gives. */
export type Drained = { encrypted: Uint8Array; keys: Uint8Array; derived: Uint8Array[]; keyUses: KeyUses };

/** Keys an engine job keeps cached by default. */
export const DEFAULT_KEY_CACHE = 65_536;

/**
 * Keys an engine job remembers compactly by default (`answerCache`): below
 * 229 376, so the table's hash index stays at 2^18 buckets (~23 MB).
 */
export const DEFAULT_ANSWER_CACHE = 200_000;

/**
 * The calling thread's table of keys given holds this many times
 * `answerCache` keys (~100 bytes each): every key of a job up to a few
 * million rows of this kind of data, so keys an engine job's answer table
 * forgot are not asked from the store again.
 */
const GIVEN_KEYS_PER_ANSWER = 8;

/** Key links per `recordUses` call at the end of a job (as the CLI). */
const RECORD_USES_BATCH = 65_536;

/** @internal */
export function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function randomUuid(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** @internal The runner shared by every entry point. */
export async function runWith<S, O>(
  env: Environment<S, O>,
  config: JobFileInput,
  opts: RunOptionsBase<S, O> & { overwrite?: boolean },
): Promise<JobResult> {
  await env.ready();
  const t0 = Date.now();
  const json = jsonOf(config);
  const contracts = { ...(env.contracts ? await env.contracts(json) : {}), ...(opts.contracts ?? {}) };
  const desc = describeJob(json, contracts);
  if (desc.consentPlugin) {
    throw new KeylinkError('UNSUPPORTED', 'consent plugins are not supported by this version of keylink', { startError: true });
  }
  const { Job } = engineOrThrow();
  const jobId = opts.jobId ?? randomUuid();
  const group = desc.groupId ?? jobId;
  const store: KeyStore = opts.keyStore ?? new MemoryKeyStore();
  const keyCache = opts.keyCache ?? DEFAULT_KEY_CACHE;
  if (!Number.isInteger(keyCache) || keyCache < 1 || keyCache > 0xffff_ffff) {
    throw new KeylinkError('INVALID_CONFIG', `keyCache must be an integer from 1 to ${0xffff_ffff}`, { startError: true });
  }
  const answerCache = opts.answerCache ?? DEFAULT_ANSWER_CACHE;
  if (!Number.isInteger(answerCache) || answerCache < 0 || answerCache > 0xffff_ffff) {
    throw new KeylinkError('INVALID_CONFIG', `answerCache must be an integer from 0 to ${0xffff_ffff}`, { startError: true });
  }
  const states: StateEvent[] = [];
  const emit = (state: JobState, message: string, extra: { rows?: number; bytes?: number } = {}) => {
    const ev: StateEvent = { jobId, state, at: Date.now(), message, ...extra };
    states.push(ev);
    try {
      opts.onState?.(ev);
    } catch {
      // A failing callback must not break the job.
    }
  };
  const signal = opts.signal;
  const checkAbort = () => {
    if (signal?.aborted) throw new AbortError(signal.reason);
  };
  emit('PENDING', '');

  // Keys the keys output lists, and this job's uses of each (across evictions).
  const ledger = new KeyLedger();

  // ---- start (with retries for transient failures)
  const attempts = (opts.startRetries ?? 3) + 1;
  let job: EngineJob | undefined;
  let jobSecrets: Record<string, string | Uint8Array> = {};
  let sinks: Sink[] = [];
  const abortSinks = async (reason: unknown) => {
    await Promise.all(sinks.map((s) => s.abort(reason).catch(() => {})));
    sinks = [];
  };
  for (let attempt = 1; ; attempt++) {
    try {
      checkAbort();
      const secrets: Record<string, string | Uint8Array> = { ...(opts.secrets ?? {}) };
      jobSecrets = secrets;
      for (const ref of desc.secrets) {
        if (secrets[ref] !== undefined) continue;
        const v = env.secret ? await env.secret(ref) : undefined;
        if (v === undefined) {
          throw new KeylinkError('SECRET', `secret ${ref} was not provided (pass it in \`secrets\`)`, { startError: true });
        }
        secrets[ref] = v;
      }
      const kek = await jobKek(desc.kek, store, secrets, env.secret?.bind(env));
      const seal = env.seal ?? webCryptoSeal;
      if (kek) await kekReady(kek, seal);
      const overwrite = opts.overwrite ?? false;
      // Keys first: it is also committed first.
      const keys = await env.sink(opts.keys, 'keys', desc, { overwrite });
      sinks.push(kek && keys !== discard ? encryptingKeysSink(keys, kek, seal) : keys);
      sinks.push(await env.sink(opts.encrypted, 'encrypted', desc, { overwrite }));
      for (let i = 0; i < desc.derived.length; i++) {
        sinks.push(await env.sink(opts.derived?.[i], `derived[${i}]`, desc, { overwrite }));
      }
      try {
        job = new Job(json, contracts, secrets, opts.seed ?? undefined);
        // The keys output is written here (one row per key, the first time
        // it is used), so the engine can forget keys: memory stays bounded.
        job.omitKeysOutput();
        job.packKeyUses();
        job.setKeyCacheLimit(keyCache);
        job.setAnswerCacheLimit(answerCache);
      } catch (e) {
        throw fromEngine(e);
      }
      break;
    } catch (e) {
      await abortSinks(e);
      const err = e instanceof KeylinkError ? e : new KeylinkError('IO', `cannot start: ${(e as Error)?.message ?? e}`, { cause: e, startError: true });
      const final = attempt >= attempts || FINAL_START_CODES.has(err.code) || err.code === 'ABORTED';
      emit('ERROR_STARTING', `${err.message} (attempt ${attempt} of ${attempts}; ${final ? 'giving up' : 'retrying'})`);
      if (final) throw err;
      await sleep((opts.retryBaseDelayMs ?? 200) * 2 ** (attempt - 1));
    }
  }
  emit('STARTED', '');
  // The job's session on the store (group commits), if it has them.
  const session = store.session?.();
  const keyStore: Pick<KeyStoreSession, 'getOrCreate' | 'recordUses' | 'getOrCreatePacked' | 'recordUsesAt'> = session ?? store;

  // ---- run
  const [keysSink, encSink, ...derivedSinks] = sinks;
  let bytes = 0;
  const heartbeat = opts.heartbeatMs ?? 10_000;
  let lastBeat = Date.now();
  const chunkBytes = Math.max(1, opts.chunkBytes ?? DEFAULT_CHUNK);
  // Keys rows waiting for the keys header (written with the data headers).
  let keysRows: Uint8Array[] = [];
  let keysHeader = false;
  const write = async (out: Drained) => {
    ledger.addUses(out.keyUses);
    if (!keysHeader && out.encrypted.length) {
      keysHeader = true;
      keysRows.unshift(job!.keysHeader());
    }
    let keys = out.keys;
    if (keysHeader && keysRows.length) {
      keys = concat(keysRows);
      keysRows = [];
    }
    const w: Promise<void>[] = [keysSink.write(keys), encSink.write(out.encrypted)];
    out.derived.forEach((d, i) => w.push(derivedSinks[i].write(d)));
    await Promise.all(w);
  };
  // Keys for the engine's requests: from the store, with this job's earlier
  // uses added, and the keys new to this job listed in the keys output.
  // `listLater`: the keys are listed in the keys output when their chunk is
  // written (parallel engine jobs: in input order), not here.
  const keyLen = desc.cipher === 'aes-256-siv' ? 64 : 32;
  const answerKeys = async (requests: { window: number }[], listLater = false): Promise<unknown[]> => {
    let keys;
    try {
      keys = await keyStore.getOrCreate(group, desc.cipher, requests as never);
    } catch (e) {
      throw e instanceof KeylinkError ? e : new KeyStoreError('KEY_STORE', `key store: ${(e as Error)?.message ?? e}`, e);
    }
    checkAbort();
    // A key this job used before an eviction comes back with the store's
    // count only: add this job's uses so far (the 2^31 cap). Keys new to
    // this job go to the keys output.
    const given = [];
    const fresh = [];
    const windows: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      let k = keys[i];
      if (k && typeof k.keyLink === 'string') {
        const before = ledger.uses(k.keyLink);
        if (before) k = { ...k, usesBefore: (Number(k.usesBefore) || 0) + before };
        if (!listLater && ledger.add(k.keyLink) && requests[i]) {
          fresh.push(k);
          windows.push(requests[i].window);
        }
      }
      given.push(k);
    }
    if (fresh.length) {
      const material = new Uint8Array(fresh.length * keyLen);
      fresh.forEach((k, i) => material.set(k.material, i * keyLen));
      keysRows.push(rowsOf(fresh.map((k) => k.keyLink), Uint32Array.from(fresh, (k) => k.keyId), material, Float64Array.from(windows)));
    }
    return given;
  };
  // The same for parallel engine jobs, in columns. Each engine job asks for
  // every key it meets once; keys another one was given already are
  // answered from `givenKeys`, the rest by the store.
  let givenKeys: GivenKeys | undefined;
  // The key of the engine jobs' request ids (random per job, never leaves the process).
  const idKey = crypto.getRandomValues(new Uint8Array(16));
  // Keys answered per chunk, listed when the chunk is written.
  const chunkKeys = new Map<number, ListedKeys>();
  // The keys output's rows of keys (the core's writer, in columns).
  const rowsOf = (links: string[], keyIds: Uint32Array, material: Uint8Array, windows: Float64Array): Uint8Array => {
    const ends = new Uint32Array(links.length);
    let at = 0;
    for (let i = 0; i < links.length; i++) ends[i] = at += links[i].length;
    try {
      return job!.keysRowsPacked(links.join(''), ends, keyIds, material, windows);
    } finally {
      material.fill(0);
    }
  };
  const listKeys = (c: ListedKeys) => {
    const n = c.links.length;
    const fresh: number[] = [];
    for (let i = 0; i < n; i++) if (ledger.add(c.links[i], 0, c.rows[i])) fresh.push(i);
    if (fresh.length === n) {
      if (n) keysRows.push(rowsOf(c.links, c.keyIds, c.material, c.windows));
    } else if (fresh.length) {
      const material = new Uint8Array(fresh.length * keyLen);
      fresh.forEach((i, j) => material.set(c.material.subarray(i * keyLen, (i + 1) * keyLen), j * keyLen));
      keysRows.push(rowsOf(fresh.map((i) => c.links[i]), Uint32Array.from(fresh, (i) => c.keyIds[i]), material, Float64Array.from(fresh, (i) => c.windows[i])));
    }
    c.material.fill(0);
  };
  const writeChunk = async (out: Drained, index: number) => {
    const c = chunkKeys.get(index);
    if (c) {
      chunkKeys.delete(index);
      listKeys(c);
    }
    await write(out);
  };
  const answerPacked = async (p: PackedRequests, index: number): Promise<PackedKeys> => {
    const n = p.windows.length;
    const out: PackedKeys = { links: new Array(n), keyIds: new Uint32Array(n), material: new Uint8Array(n * keyLen), usesBefore: new Float64Array(n) };
    // Where the store keeps the keys it answered (0: not known), for recording their uses.
    const rows = new Float64Array(n);
    const ask: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = p.ids ? givenKeys!.slot(p.ids, i) : -1;
      if (s < 0) {
        ask.push(i);
        continue;
      }
      const link = givenKeys!.link(s);
      out.links[i] = link;
      out.keyIds[i] = givenKeys!.keyId(s);
      givenKeys!.copyMaterial(s, out.material, i * keyLen);
      out.usesBefore[i] = givenKeys!.usesBefore(s) + ledger.uses(link);
    }
    if (ask.length && keyStore.getOrCreatePacked) {
      // In columns, no object per key (a store session that offers it).
      let keys: PackedKeys;
      try {
        keys = await keyStore.getOrCreatePacked(group, desc.cipher, p, ask);
      } catch (e) {
        throw e instanceof KeylinkError ? e : new KeyStoreError('KEY_STORE', `key store: ${(e as Error)?.message ?? e}`, e);
      }
      checkAbort();
      if (keys.links.length !== ask.length || keys.keyIds.length !== ask.length || keys.material.length !== ask.length * keyLen || keys.usesBefore.length !== ask.length) {
        throw new KeyStoreError('KEY_STORE', `key store: ${keys.links.length} answers in columns of other lengths for ${ask.length} requests`);
      }
      ask.forEach((i, j) => {
        const link = keys.links[j];
        if (typeof link !== 'string') throw new KeyStoreError('KEY_STORE', `key store: answer ${j} has no key link`);
        // Remembered with the store's count; this job's uses are added when given again.
        if (p.ids) givenKeys!.put(p.ids, i, link, keys.keyIds[j], keys.material, j * keyLen, keys.usesBefore[j]);
        out.links[i] = link;
        out.keyIds[i] = keys.keyIds[j];
        out.material.set(keys.material.subarray(j * keyLen, (j + 1) * keyLen), i * keyLen);
        out.usesBefore[i] = keys.usesBefore[j] + ledger.uses(link);
        rows[i] = keys.rows?.[j] ?? 0;
      });
      keys.material.fill(0);
    } else if (ask.length) {
      const requests = ask.map((i) => ({
        keyValue: p.values[i],
        window: p.windows[i],
        windowStartMs: p.windowStartMs[i],
        subject: p.subjects[i],
        // A copy: a store may keep the proposal it inserts, and `p.material` is zeroed below.
        proposal: { keyLink: p.links[i], keyId: p.keyIds[i], cipher: desc.cipher, material: p.material.slice(i * keyLen, (i + 1) * keyLen), usesBefore: 0 },
      }));
      const keys = (await answerKeys(requests, true)) as { keyLink: string; keyId: number; cipher: string; material: Uint8Array; usesBefore: number }[];
      ask.forEach((i, j) => {
        const k = keys[j];
        if (!k || typeof k.keyLink !== 'string' || k.material?.length !== keyLen || k.cipher !== desc.cipher) {
          throw new KeyStoreError('KEY_STORE', `key store: answer ${j} is not a ${desc.cipher} key`);
        }
        // Remembered with the store's count; this job's uses are added when given again.
        if (p.ids) givenKeys!.put(p.ids, i, k.keyLink, k.keyId, k.material, 0, k.usesBefore - ledger.uses(k.keyLink));
        out.links[i] = k.keyLink;
        out.keyIds[i] = k.keyId;
        out.material.set(k.material, i * keyLen);
        out.usesBefore[i] = k.usesBefore;
      });
    }
    p.material.fill(0);
    // What the keys output lists of them (in input order, when the chunk is
    // written; an engine job's last answers, index -1, at once).
    const listed: ListedKeys = { links: out.links.slice(), keyIds: out.keyIds.slice(), material: out.material.slice(), windows: p.windows.slice(), rows };
    if (index < 0) listKeys(listed);
    else chunkKeys.set(index, listed);
    return out;
  };
  const answer = async () => {
    const requests = job!.keyRequests();
    if (requests.length) job!.provideKeys(await answerKeys(requests) as never);
    await write(job!.drain() as Drained);
  };
  const beat = (rows: number) => {
    if (Date.now() - lastBeat >= heartbeat) {
      lastBeat = Date.now();
      emit('RUNNING', `${rows} rows, ${bytes} bytes`, { rows, bytes });
    }
  };
  const push = async (chunk: Uint8Array) => {
    job!.push(chunk);
    await answer();
    beat(job!.rowsRead());
  };
  // Parallel engine jobs (Node) for inputs of more than two chunks: the
  // first bytes are held until that is known.
  const parallel = env.parallel && env.parallel.workers > 1 ? env.parallel : undefined;
  let pool: ParallelEngine | undefined;
  let stopPool: (() => void) | undefined;
  let held: Uint8Array[] | undefined = parallel ? [] : undefined;
  let heldBytes = 0;
  const startPool = async (all: Uint8Array): Promise<boolean> => {
    const splitter = new Splitter(desc.delimiter);
    const end = splitter.firstRecordEnd(all);
    splitter.free();
    if (end === undefined) return false;
    givenKeys = new GivenKeys(GIVEN_KEYS_PER_ANSWER * answerCache, keyLen);
    const header = all.slice(0, end);
    // The header is checked (and its outputs written) by this thread's job.
    job!.push(header);
    await answer();
    const started = await parallel!.start({
      workers: parallel!.workers,
      json,
      contracts,
      secrets: jobSecrets,
      seed: opts.seed ?? undefined,
      keyCache,
      answerCache,
      chunkBytes,
      header,
      delimiter: desc.delimiter,
      idKey,
      answer: answerPacked,
      write: writeChunk,
    });
    pool = started;
    // An abort stops the engine jobs at once, even while the job waits for them.
    stopPool = () => void started.terminate();
    signal?.addEventListener('abort', stopPool, { once: true });
    for (let at = end; at < all.length; at += chunkBytes) {
      await pool.push(all.subarray(at, at + chunkBytes));
      beat(pool.rowsWritten);
      checkAbort();
    }
    return true;
  };
  try {
    emit('RUNNING', '0 rows, 0 bytes', { rows: 0, bytes: 0 });
    let buf = new Uint8Array(0);
    let used = 0;
    const pushLocal = async (input: Uint8Array) => {
      // Large chunks are cut to chunkBytes (heartbeats and aborts stay timely); small ones are gathered.
      for (let at = 0; at < input.length; ) {
        const chunk = input.subarray(at, Math.min(input.length, at + chunkBytes - used));
        at += chunk.length;
        if (used === 0 && chunk.length === chunkBytes) {
          await push(chunk);
          continue;
        }
        if (buf.length === 0) buf = new Uint8Array(chunkBytes);
        buf.set(chunk, used);
        used += chunk.length;
        if (used === chunkBytes) {
          await push(buf);
          used = 0;
        }
        checkAbort();
      }
    };
    for await (const input of env.source(opts.source, desc, signal)) {
      checkAbort();
      bytes += input.length;
      if (pool) {
        // In pieces of at most a chunk, so heartbeats and aborts stay timely.
        for (let at = 0; at < input.length; at += chunkBytes) {
          await pool.push(input.subarray(at, at + chunkBytes));
          beat(pool.rowsWritten);
          checkAbort();
        }
        continue;
      }
      if (held) {
        held.push(input);
        heldBytes += input.length;
        if (heldBytes <= 2 * chunkBytes) continue;
        const all = concat(held);
        held = undefined;
        if (!(await startPool(all))) await pushLocal(all);
        continue;
      }
      await pushLocal(input);
    }
    checkAbort();
    if (held) await pushLocal(concat(held.length ? held : [new Uint8Array(0)]));
    let summary: Summary;
    let summaryUses: KeyUses[];
    if (pool) {
      const parts = await pool.finish();
      job!.endInput();
      await answer();
      const { outputs, summary: own } = job!.finish() as { outputs: Drained; summary: Summary };
      await write(outputs);
      summaryUses = [own, ...parts].map((s) => s.keyUses as unknown as KeyUses);
      summary = mergeSummaries([own, ...parts]);
    } else {
      if (used) await push(buf.subarray(0, used));
      job!.endInput();
      await answer();
      const done = job!.finish() as { outputs: Drained; summary: Summary };
      await write(done.outputs);
      summary = done.summary;
      summaryUses = [summary.keyUses as unknown as KeyUses];
    }
    if (keysRows.length) await keysSink.write(concat(keysRows)); // rows without a header: cannot happen
    keysRows = [];
    for (const part of summaryUses) ledger.addUses(part);
    // As the CLI: keys listed once however often they were evicted; uses merged.
    summary.keysUsed = ledger.size;
    Object.defineProperty(summary, 'keyUses', {
      enumerable: true,
      configurable: true,
      get: () => Array.from(ledger.slices(Infinity)).flat(),
    });
    checkAbort();
    if (keyStore.recordUsesAt) {
      for (const batch of ledger.slicesWithRows(RECORD_USES_BATCH)) {
        await keyStore.recordUsesAt(batch);
        checkAbort();
      }
    } else if (keyStore.recordUses) {
      for (const batch of ledger.slices(RECORD_USES_BATCH)) {
        await keyStore.recordUses(batch);
        checkAbort();
      }
    }
    checkAbort();
    // Every key given (and use recorded) durable before any output is.
    try {
      await session?.commit();
    } catch (e) {
      throw e instanceof KeylinkError ? e : new KeyStoreError('KEY_STORE', `key store: ${(e as Error)?.message ?? e}`, e);
    }
    // Commit: keys first, so no encrypted data is ever visible without its keys.
    await keysSink.commit();
    await Promise.all([encSink, ...derivedSinks].map((s) => s.commit()));
    sinks = [];
    const elapsedMs = Date.now() - t0;
    const secs = elapsedMs / 1000;
    const rate = secs > 0 ? summary.rowsWritten / secs : 0;
    let msg = `Processed ${summary.rowsWritten} records in ${secs.toFixed(1)} s (${rate.toFixed(0)} records/s)`;
    if (summary.rowsSkipped > 0) {
      const shown = summary.skippedRows.slice(0, 20).join(', ');
      msg += `; skipped ${summary.rowsSkipped} rows: ${shown}${summary.skippedRows.length > 20 ? ', ...' : ''}`;
    }
    emit('FINISHED', msg, { rows: summary.rowsRead, bytes });
    return { jobId, group, summary, states, elapsedMs, bytes };
  } catch (e) {
    const err = signal?.aborted ? new AbortError(signal.reason) : fromEngine(e);
    // The engine jobs stop first, so nothing writes to an aborted output.
    await pool?.terminate();
    await abortSinks(err);
    const start = err instanceof KeylinkError && err.startError;
    emit(start ? 'ERROR_STARTING' : 'ERROR', (err as Error)?.message ?? String(err));
    throw err;
  } finally {
    if (stopPool) signal?.removeEventListener('abort', stopPool);
    await pool?.terminate();
    await session?.close().catch(() => {});
    givenKeys?.clear();
    idKey.fill(0);
    for (const c of chunkKeys.values()) c.material.fill(0);
    job?.free();
  }
}

/** The summaries of a job's engine jobs as one (`keyUses` and `keysUsed` come from the ledger). */
function mergeSummaries(parts: Summary[]): Summary {
  const sum = (f: (s: Summary) => number) => parts.reduce((n, s) => n + f(s), 0);
  return {
    rowsRead: sum((s) => s.rowsRead),
    rowsWritten: sum((s) => s.rowsWritten),
    rowsSkipped: sum((s) => s.rowsSkipped),
    skippedRows: parts.flatMap((s) => s.skippedRows).sort((a, b) => a - b).slice(0, MAX_LISTED_SKIPS),
    derivedRows: parts[0].derivedRows.map((_, i) => sum((s) => s.derivedRows[i] ?? 0)),
    keysUsed: 0,
    keysCreated: sum((s) => s.keysCreated),
    valuesEncrypted: sum((s) => s.valuesEncrypted),
    keyUses: [], // from the ledger
  };
}

/**
 * Keys answered for a chunk, listed in the keys output when the chunk is
 * written; `rows`: where the store keeps each (`PackedKeys.rows`, 0: not known).
 */
interface ListedKeys {
  links: string[];
  keyIds: Uint32Array;
  material: Uint8Array;
  windows: Float64Array;
  rows: Float64Array;
}

/** Skipped row numbers a summary lists (as the core). */
const MAX_LISTED_SKIPS = 1000;
