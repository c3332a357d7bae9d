/**
 * Parallel engine jobs for Node: the input is cut into chunks that end on
 * record boundaries, dealt round-robin to engine jobs in worker threads
 * (`engine-worker.ts`), and their outputs are written in input order, as the
 * CLI's host does with `--workers`. The main thread keeps what must be one
 * per job: reading, the key store, the keys output and the use counts.
 *
 * Each worker's engine job has its own nonce and key streams (seeds derived
 * from the job's seed when one is given), so outputs for a fixed seed depend
 * on the number of workers, as with the CLI; decrypted, they are the same.
 * @packageDocumentation
 */
import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { Splitter, type SpanCounts } from './split.js';
import type { ChunkMsg, ErrorData, WorkerInit } from './engine-worker.js';
import type { PackedRequests } from './types.js';
import { concat, type Drained, type PoolRequest } from './run.js';
import type { Summary } from './types.js';

/** @internal What the runner gives the pool, and the compiled engine. */
export type PoolOptions = PoolRequest & { module: WebAssembly.Module };

/**
 * An engine worker's JS heap holds little that lives long (its engine's
 * state is in WebAssembly memory), but V8 lets its young generation grow to
 * ~32 MB before it collects. Capped at 8 MB, each worker's heap stays near
 * 16 MB instead of ~40 MB: 1M-row benchmark 595-641 MB peak RSS against
 * 647-655 MB, in the same time.
 */
const WORKER_LIMITS = { maxYoungGenerationSizeMb: 8 };

/** The seed of worker `w`'s engine job, from the job's seed (tests only). */
function workerSeed(seed: Uint8Array, w: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update('keylink engine worker seed v1\0').update(seed).update(String(w)).digest());
}

/** An engine error rebuilt on this thread, with its fields (`code`, `row`, ...). */
function rebuild(e: ErrorData): Error {
  return Object.assign(new Error(e.message), e);
}

/** @internal Engine jobs in worker threads. */
export class EnginePool {
  #o: PoolOptions;
  #workers: Worker[] = [];
  #splitter: Splitter;
  #parts: Uint8Array[] = [];
  #buffered = 0;
  #index = 0;
  #rowsBefore = 0;
  #linesBefore: number;
  /** Outputs of chunks that arrived before an earlier one. */
  #results = new Map<number, Drained>();
  #next = 0;
  #writing: Promise<void> = Promise.resolve();
  #answering: Promise<unknown> = Promise.resolve();
  #inFlight = 0;
  /** Waiters for any change (a chunk written, a job done, a failure). */
  #waiters: (() => void)[] = [];
  #failure: { index: number; error: unknown } | undefined;
  #done: (Summary & { outputs: Drained })[] = [];
  #stopping = false;
  /** Rows of the chunks written so far. */
  rowsWritten = 0;
  #chunkRows = new Map<number, number>();

  private constructor(o: PoolOptions) {
    this.#o = o;
    this.#splitter = new Splitter(o.delimiter);
    this.#linesBefore = o.header.reduce((n, b) => n + (b === 0x0a ? 1 : 0), 0);
  }

  /** Starts `o.workers` engine jobs and waits until each has read the header. */
  static async start(o: PoolOptions): Promise<EnginePool> {
    const pool = new EnginePool(o);
    const ready: Promise<void>[] = [];
    for (let w = 0; w < o.workers; w++) {
      const init: WorkerInit = {
        module: o.module,
        json: o.json,
        contracts: o.contracts,
        secrets: o.secrets,
        seed: o.seed ? workerSeed(o.seed, w) : undefined,
        keyCache: o.keyCache,
        answerCache: o.answerCache,
        header: o.header,
        idKey: o.idKey,
        headerLines: pool.#linesBefore,
      };
      const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: init, resourceLimits: WORKER_LIMITS });
      pool.#workers.push(worker);
      ready.push(
        new Promise((resolve, reject) => {
          worker.once('message', (m: { t: string; error?: ErrorData }) => (m.t === 'ready' ? resolve() : reject(rebuild(m.error!))));
          worker.once('error', reject);
        }),
      );
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      await pool.terminate();
      throw e;
    }
    pool.#workers.forEach((worker) => worker.on('message', (m) => pool.#onMessage(worker, m)));
    pool.#workers.forEach((worker) =>
      worker.on('error', (e) => pool.#fail(-1, e)).on('exit', (code) => {
        if (!pool.#stopping) pool.#fail(-1, new Error(`an engine worker stopped (exit code ${code})`));
      }),
    );
    return pool;
  }

  /**
   * Records a failure: of chunk `index`, or of the job (-1: a write, a
   * worker that stopped). The first failure in input order is the one
   * reported, as a single engine job would report it.
   */
  #fail(index: number, error: unknown): void {
    if (!this.#failure || index < this.#failure.index) this.#failure = { index, error };
    this.#notify();
  }

  #notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const wake of w) wake();
  }

  /** Throws the failure once every chunk before it arrived (none of them can fail first any more). */
  #check(): void {
    if (this.#failure && this.#failure.index <= this.#next) throw this.#failure.error;
  }

  /** Waits until `ready()`, throwing a failure as soon as it is the one to report. */
  async #until(ready: () => boolean): Promise<void> {
    for (;;) {
      this.#check();
      if (ready()) return;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  #onMessage(worker: Worker, m: { t: string; index: number; requests?: PackedRequests; out?: Drained; outputs?: Drained; summary?: Summary; error?: ErrorData }): void {
    switch (m.t) {
      case 'keys': {
        const answered = this.#answering.then(() => this.#o.answer(m.requests!, m.index));
        this.#answering = answered.catch(() => {});
        answered.then(
          (keys) => worker.postMessage({ t: 'keys', keys }, [keys.keyIds.buffer, keys.material.buffer, keys.usesBefore.buffer] as ArrayBuffer[]),
          (e) => this.#fail(m.index, e),
        );
        break;
      }
      case 'out':
        this.#results.set(m.index, m.out!);
        this.#flush();
        break;
      case 'done':
        this.#done[this.#workers.indexOf(worker)] = { ...m.summary!, outputs: m.outputs! };
        this.#notify();
        break;
      case 'error':
        this.#fail(m.index, rebuild(m.error!));
        break;
    }
  }

  /** Writes the outputs that are next in input order. */
  #flush(): void {
    while (this.#results.has(this.#next)) {
      const out = this.#results.get(this.#next)!;
      const index = this.#next;
      this.#results.delete(index);
      this.#next++;
      this.#writing = this.#writing.then(async () => {
        if (!this.#failure) {
          try {
            await this.#o.write(out, index);
          } catch (e) {
            this.#fail(-1, e);
          }
        }
        this.rowsWritten += this.#chunkRows.get(index) ?? 0;
        this.#chunkRows.delete(index);
        this.#inFlight--;
        this.#notify();
      });
    }
    this.#notify();
  }

  /** Waits until fewer than two chunks per worker are in flight (bounded memory). */
  #permit(): Promise<void> {
    return this.#until(() => this.#inFlight < 2 * this.#workers.length && !this.#failure);
  }

  async #send(bytes: Uint8Array, counts: SpanCounts, last: boolean): Promise<void> {
    await this.#permit();
    const index = this.#index++;
    const msg: ChunkMsg = { t: 'chunk', index, bytes, rowsBefore: this.#rowsBefore, linesBefore: this.#linesBefore, rows: counts.records, lines: counts.lines, last };
    this.#rowsBefore += counts.records;
    this.#linesBefore += counts.lines;
    this.#chunkRows.set(index, counts.records);
    this.#inFlight++;
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    this.#workers[index % this.#workers.length].postMessage(msg, owned ? [bytes.buffer as ArrayBuffer] : []);
  }

  #take(): Uint8Array {
    const all = this.#parts.length === 1 ? this.#parts[0] : concat(this.#parts);
    this.#parts = [];
    this.#buffered = 0;
    return all;
  }

  /** Takes more input (after the header). */
  async push(bytes: Uint8Array): Promise<void> {
    this.#check();
    this.#parts.push(bytes);
    this.#buffered += bytes.length;
    if (this.#buffered < this.#o.chunkBytes) return;
    const all = this.#take();
    const { end, counts } = this.#splitter.cut(all);
    if (end === 0) {
      // One record longer than a chunk: wait for its end.
      this.#parts.push(all);
      this.#buffered = all.length;
      return;
    }
    if (end < all.length) {
      this.#parts.push(all.slice(end));
      this.#buffered = all.length - end;
    }
    await this.#send(end === all.length ? all : all.slice(0, end), counts, false);
  }

  /**
   * Ends the input: sends the rest, waits for every chunk and each engine
   * job's end, and writes what the jobs' ends produced (in worker order).
   */
  async finish(): Promise<Summary[]> {
    const rest = this.#take();
    const { end, counts } = this.#splitter.cut(rest);
    const tail = this.#splitter.finish(rest.subarray(end));
    await this.#send(rest.slice(), { records: counts.records + tail.records, lines: counts.lines + tail.lines }, true);
    for (const w of this.#workers) w.postMessage({ t: 'end' });
    await this.#until(() => this.#done.filter(Boolean).length === this.#workers.length && this.#inFlight === 0);
    await this.#writing;
    this.#check();
    if (this.#next !== this.#index) throw new Error(`internal: wrote ${this.#next} of ${this.#index} chunks`);
    for (const d of this.#done) {
      await this.#o.write(d.outputs, -1);
    }
    return this.#done;
  }

  /** Stops every worker. */
  async terminate(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    // Whatever still waits (a permit, the end) stops waiting.
    this.#fail(-1, new Error('the engine workers were stopped'));
    this.#splitter.free();
    await Promise.all(this.#workers.map((w) => w.terminate().catch(() => 0)));
  }
}
