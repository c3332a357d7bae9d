/**
 * Public types of the keylink SDK: key stores, lifecycle events, run options
 * and results.
 * @packageDocumentation
 */

import type { Kek } from './kek.js';

/** A cipher of a batch job group (fixed at the group's first use). */
export type Cipher = 'aes-256-gcm' | 'aes-256-siv';

/** A key as a store keeps it. */
export interface StoredKey {
  /** A lowercase hyphenated UUID v4, shared by every row encrypted with this key. */
  keyLink: string;
  /** Tink key id, 1..2^32-1. */
  keyId: number;
  /** The key's cipher. */
  cipher: Cipher;
  /** Raw key material: 32 bytes (AES-256-GCM) or 64 bytes (AES-SIV). */
  material: Uint8Array;
  /** Values earlier jobs encrypted with this key (toward the 2^31 cap); 0 if unknown. */
  usesBefore: number;
}

/**
 * A (key-field value, window) combination a job needs a key for, with a
 * fresh key the job proposes.
 *
 * **Security:** `keyValue` and `subject` are personal data. A store must
 * keep only a keyed hash of them and must never log them.
 */
export interface KeyRequest {
  /** The key-field value (PII). */
  keyValue: string;
  /** Window index: `floor(epoch_ms / window_ms)`. */
  window: number;
  /** Start of the window, Unix ms. */
  windowStartMs: number;
  /** Data-subject value of the first row that needed the key (PII), or null. */
  subject: string | null;
  /** The key to store if the store has none for this combination. */
  proposal: StoredKey;
}

/**
 * A key store: where the keys of every (group, key-field value, window) live
 * between jobs. Implement this interface for a custom (remote, async) store.
 *
 * Contract of {@link KeyStore.getOrCreate}: for a whole batch of requests at
 * once (one round trip per batch, not per row) and atomically, return for
 * each request the key the store holds for (group, keyValue, window),
 * inserting the request's `proposal` where it holds none. Concurrent callers
 * of one group must end up with exactly one key per combination. Throw
 * (e.g. {@link KeyStoreError} with code `CIPHER_MISMATCH`) if the group's
 * stored cipher is not `cipher`.
 */
export interface KeyStore {
  /**
   * Batched get-or-create; returns keys in request order.
   * @param group - the batch job group
   * @param cipher - the job's cipher (a group's cipher is fixed at first use)
   * @param requests - the combinations the job has no key for
   */
  getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]>;
  /**
   * Optional: adds a finished job's per-key encryption counts to the stored
   * usage counters.
   * @param uses - `[keyLink, count]` pairs
   */
  recordUses?(uses: [string, number][]): Promise<void>;
  /** Optional: releases resources (closing a database). The SDK never calls it for you. */
  close?(): Promise<void> | void;
  /**
   * Optional: a job's session on the store, for stores that can make their
   * writes durable in groups (`SqliteKeyStore`: one transaction for up to a
   * second or 65,536 requests, as the CLI's store). A job opens one session,
   * asks for every key through it, commits it before its outputs are
   * committed (so no output is visible before its keys are durable) and
   * closes it at its end, finished or failed. Without `session`, every
   * `getOrCreate` must be durable when it returns.
   */
  session?(): KeyStoreSession;
  /**
   * Optional: the key-encryption key the store wraps key material with
   * (`SqliteKeyStore` opened with `kek`), or `null` for a store that holds
   * material raw by design (a `SqliteKeyStore` created without a KEK). A job
   * on a store with a KEK writes its keys output as Tink encrypted keysets
   * under it, as the CLI does with `--kek`; a job file whose `encryption.kek`
   * names another KEK is refused (`KEK_MISMATCH`), and one that names a KEK
   * for a `null` store too (`KEK_NOT_EXPECTED`). Left out (memory, IndexedDB,
   * custom stores): the store does not wrap, and only the job file's
   * `encryption.kek` encrypts the keys output.
   */
  readonly kek?: Kek | null;
}

/** @internal Key requests in columns (`Job.keyRequestsPacked`). */
export interface PackedRequests {
  values: string[];
  subjects: (string | null)[];
  windows: Float64Array;
  windowStartMs: Float64Array;
  links: string[];
  keyIds: Uint32Array;
  material: Uint8Array;
  /** The requests' 128-bit keyed ids, four words each (`Job.setRequestIdKey`). */
  ids?: Uint32Array;
}

/** @internal Keys in columns (`Job.provideKeysPacked`). */
export interface PackedKeys {
  links: string[];
  keyIds: Uint32Array;
  material: Uint8Array;
  usesBefore: Float64Array;
  /**
   * @internal Optional: where the store keeps each key (the SQLite store:
   * its row id; 0 if not known), given back with its uses to
   * {@link KeyStoreSession.recordUsesAt}.
   */
  rows?: Float64Array;
}

/** A job's session on a key store (see {@link KeyStore.session}). */
export interface KeyStoreSession {
  /** As {@link KeyStore.getOrCreate}; the keys may become durable only with `commit`. */
  getOrCreate(group: string, cipher: Cipher, requests: KeyRequest[]): Promise<StoredKey[]>;
  /** As {@link KeyStore.recordUses}; durable with `commit`. */
  recordUses?(uses: [string, number][]): Promise<void>;
  /**
   * Makes every key this session gave and every use it recorded durable;
   * throws if any of them was lost (then the job must fail).
   */
  commit(): Promise<void>;
  /** Ends the session (after `commit`, or when the job failed). */
  close(): Promise<void>;
  /**
   * @internal Optional: `getOrCreate` for requests in columns (those of
   * `pick`, in its order), answered in columns: no object per key.
   */
  getOrCreatePacked?(group: string, cipher: Cipher, requests: PackedRequests, pick: ArrayLike<number>): Promise<PackedKeys>;
  /**
   * @internal Optional: `recordUses` with, for each key link, the `rows`
   * hint `getOrCreatePacked` gave for it (0: none), so the store can find
   * the key without its index of key links.
   */
  recordUsesAt?(uses: [string, number, number][]): Promise<void>;
}

/** Lifecycle states of a job (SPEC section 7). */
export type JobState = 'PENDING' | 'STARTED' | 'RUNNING' | 'FINISHED' | 'ERROR_STARTING' | 'ERROR';

/** One lifecycle event: appended to the job's state list and passed to `onState`. */
export interface StateEvent {
  /** The job's id (a UUID). */
  jobId: string;
  /** The new state (`RUNNING` repeats as a heartbeat). */
  state: JobState;
  /** Unix ms. */
  at: number;
  /** Human-readable message (never containing PII). */
  message: string;
  /** Data rows read so far (for `RUNNING` and `FINISHED`). */
  rows?: number;
  /** Input bytes read so far (for `RUNNING` and `FINISHED`). */
  bytes?: number;
}

/** What a finished job did. */
export interface Summary {
  /** Data rows read (header not counted), skipped ones included. */
  rowsRead: number;
  rowsWritten: number;
  rowsSkipped: number;
  /** The first 1000 skipped row numbers (1-based). */
  skippedRows: number[];
  /** Rows written to each derived output, in job-file order. */
  derivedRows: number[];
  /** Keys used by this job (rows of the keys output: each key once). */
  keysUsed: number;
  /** Of those, keys this job created. */
  keysCreated: number;
  /** PII values encrypted. */
  valuesEncrypted: number;
  /**
   * `[keyLink, values encrypted]` per key used for at least one value,
   * merged across key-cache evictions (built when read).
   */
  keyUses: [string, number][];
}

/** A description of a valid job file (what {@link describeJob} returns). */
export interface JobDescription {
  contractRef: string;
  keyField: string;
  /** The configured group, or null (the job's id is then the group). */
  groupId: string | null;
  cipher: Cipher;
  associatedData: 'none' | 'field-name';
  windowHours: number;
  retentionDays: number;
  /**
   * The job file's `encryption.kek` as written (`env:NAME`, `file:PATH`, or
   * the keyset JSON itself when inline), or null. Treat it as a secret when
   * it is inline.
   */
  kek: string | null;
  errorPolicy: 'fail' | 'skip';
  /** The source's field delimiter, as a byte value (44 for `,`). */
  delimiter: number;
  /** Connector name → kind (and root for `local`). */
  connectors: Record<string, { kind: string; root?: string }>;
  source: ResolvedLocation;
  encrypted: ResolvedLocation;
  keys: ResolvedLocation;
  derived: (ResolvedLocation & { consentLevels: number[]; consentLevelType: 'GRANULAR' | 'CUMULATIVE' })[];
  /** Secret references (`env:`/`file:`) the job needs resolved. */
  secrets: string[];
  /** True when consent comes from a plugin component. */
  consentPlugin: boolean;
}

/** A location of the job file: connector name (or null) and path (`path_prefix/file_name`). */
export interface ResolvedLocation {
  connector: string | null;
  path: string;
}

/** Where a job reads from: a Web stream, a `Blob`/`File`, bytes, or any async iterable of bytes. */
export type SourceInput = ReadableStream<Uint8Array> | Blob | Uint8Array | AsyncIterable<Uint8Array>;

/** Where an output goes: a Web `WritableStream`. */
export type OutputInput = WritableStream<Uint8Array>;

/** What a job's outputs are written to. */
export interface RunOutputs<O> {
  /** The encrypted data. `null` drops it. */
  encrypted?: O | null;
  /** The keys output. `null` drops it. */
  keys?: O | null;
  /**
   * Derived outputs, in job-file order. `null` drops one. Left out: dropped
   * (web entry point), or written to the job file's target (Node).
   */
  derived?: (O | null)[];
}

/** Options of {@link runBatchJob}. */
export interface RunOptionsBase<S, O> extends RunOutputs<O> {
  /** The input CSV. */
  source: S;
  /** The key store (default: a new in-memory store, keys then live only as long as the job). */
  keyStore?: KeyStore;
  /** Lifecycle callback: every state, and a `RUNNING` heartbeat every `heartbeatMs`. */
  onState?: (event: StateEvent) => void;
  /** Stops the job: outputs are aborted, nothing partial is committed. */
  signal?: AbortSignal;
  /**
   * Secret values by reference as written (`{"env:MASK_SEED": "..."}`), for
   * masking seeds and for the job file's `encryption.kek` (the KEK keyset
   * JSON: `{"env:KEYLINK_KEK": keysetJson}`); Node also reads `env:`/`file:`
   * itself.
   */
  secrets?: Record<string, string | Uint8Array>;
  /** Contract files by path, for `data_contract_file` (Node reads them itself). */
  contracts?: Record<string, string>;
  /**
   * Most keys the engine keeps cached, ready to encrypt with (default
   * 65 536). After a batch that leaves more cached, the engine forgets them
   * all; a key needed later comes from the answer cache (`answerCache`) or
   * is asked of the key store again (the store answers with the same key).
   * This bounds the job's memory however many distinct (key-field value,
   * window) pairs the input has; what remains per key is its use count (a
   * few dozen bytes). Outputs do not depend on it.
   */
  keyCache?: number;
  /**
   * Most keys the engine remembers compactly after its key cache forgot
   * them (default 200 000, about 100 bytes a key: at most ~23 MB of the
   * engine's memory). A key it holds is not asked of the key store again,
   * which on data without locality (each key-field value spread over the
   * whole file) saves most store round trips. When full it forgets a
   * quarter of its keys. Only AES-256-GCM keys are kept. `0` turns it off.
   * With engine jobs in worker threads (Node), the calling thread also
   * remembers the keys it gave them, by a keyed id of (key-field value,
   * window), for up to 8 times this many keys (~100 bytes each, any cipher),
   * so keys one engine job was given, or an answer table forgot, are not
   * asked of the store again. Outputs do not depend on it.
   */
  answerCache?: number;
  /** Heartbeat interval in ms (default 10000). */
  heartbeatMs?: number;
  /** Bytes pushed into the engine per call, and per chunk of parallel engine jobs (default 2 MiB). */
  chunkBytes?: number;
  /** Start attempts after the first for transient start failures (default 3). */
  startRetries?: number;
  /** First back-off delay in ms, doubled per retry (default 200). */
  retryBaseDelayMs?: number;
  /** The job id (default: a random UUID). */
  jobId?: string;
  /**
   * Seed of the job's CSPRNG, 32 bytes. **Tests only**: leave it out, and the
   * seed comes from `crypto.getRandomValues`.
   */
  seed?: Uint8Array;
}

/** Options of the environment-neutral {@link runBatchJob}. */
export type RunOptions = RunOptionsBase<SourceInput, OutputInput>;

/** What {@link runBatchJob} resolves to. */
export interface JobResult {
  jobId: string;
  /** The batch job group the keys belong to. */
  group: string;
  summary: Summary;
  /** Every lifecycle event of the job, in order. */
  states: StateEvent[];
  /** Wall time in ms. */
  elapsedMs: number;
  /** Input bytes read. */
  bytes: number;
}
