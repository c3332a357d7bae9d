/**
 * keylink for any JavaScript runtime with Web APIs (edge runtimes, workers,
 * bundlers): sources are Web streams, `Blob`s or bytes; outputs are
 * `WritableStream`s. Call {@link initKeylink} with the wasm engine
 * (`keylink/keylink_bg.wasm` as bytes, a `WebAssembly.Module` or a URL)
 * before the first job, or pass `wasm` to {@link runBatchJob}.
 *
 * Entry points: `keylink` resolves to this module by default, to
 * `./node.js` under Node (paths, SQLite store) and to `./browser.js` in
 * browsers (IndexedDB store, engine fetched next to the module).
 * @packageDocumentation
 */
import { chunksOf, discard, runWith, streamSink, type Environment } from './run.js';
import type { JobFileInput } from './jobfile.js';
import type { JobResult, RunOptions, OutputInput, SourceInput } from './types.js';
import { initKeylink, type WasmSource } from './wasm-loader.js';

export * from './errors.js';
export type * from './jobfile.js';
export type * from './types.js';
export { describeJob } from './run.js';
export { initKeylink, isKeylinkReady, type WasmSource } from './wasm-loader.js';
export { Kek } from './kek.js';
export { MemoryKeyStore } from './stores/memory.js';
export { IndexedDbKeyStore, type IndexedDbKeyStoreOptions } from './stores/indexeddb.js';

/** @internal The Web-API environment shared by the default and browser entry points. */
export function webEnvironment(wasm?: WasmSource): Environment<SourceInput, OutputInput> {
  return {
    ready: () => initKeylink(wasm),
    source: (source, _desc, signal) => chunksOf(source, signal),
    sink: async (output) => (output ? streamSink(output) : discard),
  };
}

/** Options of {@link runBatchJob} in the environment-neutral entry point. */
export interface WebRunOptions extends RunOptions {
  /** The wasm engine, if {@link initKeylink} was not called. */
  wasm?: WasmSource;
}

/**
 * Runs one batch job over a source and writes its outputs.
 *
 * Lifecycle: `PENDING` → `STARTED` → `RUNNING` (heartbeats) → `FINISHED`, or
 * `ERROR_STARTING` / `ERROR`; every event goes to `onState` and into the
 * result's `states`. On failure or abort, every output stream is aborted.
 *
 * @param config - the job file (object in either key spelling, or JSON text)
 * @param options - source, outputs, key store, callbacks, signal
 * @returns the job's id, group, summary and states
 * @throws {@link JobFileError} (invalid job file, no job created),
 *   {@link InputError} (bad data under error policy `fail`),
 *   {@link AbortError}, {@link KeyStoreError}, {@link KeylinkError}
 * @example
 * ```ts
 * import { runBatchJob, initKeylink } from 'keylink';
 * await initKeylink(wasmBytes);
 * const result = await runBatchJob(job, { source: file, encrypted, keys, derived: [analytics] });
 * ```
 */
export function runBatchJob(config: JobFileInput, options: WebRunOptions): Promise<JobResult> {
  return runWith(webEnvironment(options.wasm), config, options);
}
