/**
 * One engine job in a Node worker thread, driven by {@link ./pool.ts}: it
 * takes chunks that end on record boundaries (not every chunk of the file,
 * so it moves its error positions and skipped-row numbers to the file's),
 * asks the main thread for the keys it needs, and posts its outputs back.
 * Messages are handled one at a time, in order.
 * @packageDocumentation
 */
import { parentPort, workerData } from 'node:worker_threads';
import initWasm, { Job } from './wasm/keylink.js';
import type { Drained } from './run.js';

/** @internal What the pool gives a worker when it starts it. */
export interface WorkerInit {
  module: WebAssembly.Module;
  json: string;
  contracts: Record<string, string>;
  secrets: Record<string, string | Uint8Array>;
  seed: Uint8Array | undefined;
  keyCache: number;
  answerCache: number;
  header: Uint8Array;
  headerLines: number;
  idKey: Uint8Array;
}

/** @internal A chunk: its place in the file and its counts. */
export interface ChunkMsg {
  t: 'chunk';
  index: number;
  bytes: Uint8Array;
  rowsBefore: number;
  linesBefore: number;
  rows: number;
  lines: number;
  last: boolean;
}

/** @internal An engine error, as plain data (errors do not cross threads with their fields). */
export interface ErrorData {
  message: string;
  code?: string;
  startError?: boolean;
  row?: number;
  line?: number;
  column?: string;
  problems?: unknown;
}


export type { PackedKeys, PackedRequests } from './types.js';
import type { PackedKeys, PackedRequests } from './types.js';

const port = parentPort!;
const init = workerData as WorkerInit;

function errorData(e: unknown): ErrorData {
  const x = e as ErrorData & Error;
  return { message: String(x?.message ?? e), code: x?.code, startError: x?.startError, row: x?.row, line: x?.line, column: x?.column, problems: x?.problems };
}

/** The buffers of an output, to transfer rather than copy. */
function buffers(o: Drained): ArrayBuffer[] {
  return [o.encrypted, o.keys, ...o.derived].map((b) => b.buffer as ArrayBuffer).filter((b, i, all) => all.indexOf(b) === i);
}

let job: Job;
let rows = 0;
let lines = 0;
let ended = false;
let lastIndex = 0;
/** (first job row of a chunk, shift to the file's row numbers), per chunk. */
const rowMap: [number, number][] = [];
let answerKeys: ((keys: PackedKeys) => void) | undefined;

/** Asks the main thread for the keys of the current requests and provides them. */
async function answer(index: number): Promise<void> {
  const requests = job.keyRequestsPacked() as PackedRequests;
  if (!requests.windows.length) return;
  const keys = await new Promise<PackedKeys>((resolve) => {
    answerKeys = resolve;
    const moved = [requests.windows, requests.windowStartMs, requests.keyIds, requests.material, ...(requests.ids ? [requests.ids] : [])].map((a) => a.buffer as ArrayBuffer);
    port.postMessage({ t: 'keys', index, requests }, moved);
  });
  job.provideKeysPacked(keys.links, keys.keyIds, keys.material, keys.usesBefore);
  keys.material.fill(0);
}

async function onChunk(m: ChunkMsg): Promise<void> {
  lastIndex = m.index;
  const rowShift = m.rowsBefore - rows;
  const lineShift = m.linesBefore - lines;
  rowMap.push([rows + 1, rowShift]);
  job.pushAt(m.bytes, rowShift, lineShift);
  rows += m.rows;
  lines += m.lines;
  if (m.last) {
    ended = true;
    job.endInputAt(rowShift, lineShift);
  }
  await answer(m.index);
  const out = job.drain() as Drained;
  port.postMessage({ t: 'out', index: m.index, out }, buffers(out));
}

async function onEnd(): Promise<void> {
  if (!ended) job.endInput();
  // Index -1: these keys are listed at once (the job's end is written last).
  await answer(-1);
  const { outputs, summary } = job.finish() as { outputs: Drained; summary: { skippedRows: number[] } };
  summary.skippedRows = summary.skippedRows.map((r) => {
    let shift = 0;
    for (let i = rowMap.length - 1; i >= 0; i--) {
      if (rowMap[i][0] <= r) {
        shift = rowMap[i][1];
        break;
      }
    }
    return r + shift;
  });
  port.postMessage({ t: 'done', outputs, summary }, buffers(outputs));
}

let queue: Promise<void> = (async () => {
  await initWasm({ module_or_path: init.module });
  job = new Job(init.json, init.contracts, init.secrets, init.seed);
  job.omitKeysOutput();
  job.packKeyUses();
  job.setRequestIdKey(init.idKey);
  job.setKeyCacheLimit(init.keyCache);
  job.setAnswerCacheLimit(init.answerCache);
  // The headers: the pool writes them once; this job's are dropped.
  job.push(init.header);
  job.drain();
  lines = init.headerLines;
  port.postMessage({ t: 'ready' });
})();

let failed = false;
port.on('message', (m: { t: string; keys?: PackedKeys }) => {
  if (m.t === 'keys') {
    // Answers the one request in flight (messages are handled in order).
    const resolve = answerKeys;
    answerKeys = undefined;
    resolve?.(m.keys!);
    return;
  }
  queue = queue.then(async () => {
    if (failed) return;
    try {
      if (m.t === 'chunk') await onChunk(m as ChunkMsg);
      else if (m.t === 'end') await onEnd();
    } catch (e) {
      failed = true;
      port.postMessage({ t: 'error', index: m.t === 'chunk' ? (m as ChunkMsg).index : lastIndex, error: errorData(e) });
    }
  });
  queue.catch(() => {});
});
// A failure while starting (the job file was validated by the main thread already).
queue.catch((e) => {
  failed = true;
  port.postMessage({ t: 'error', index: -1, error: errorData(e) });
});
