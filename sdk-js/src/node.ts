/**
 * keylink for Node (20.19+): everything of the default entry point, plus file
 * paths as sources and outputs (written atomically: temporary file, fsync,
 * rename; nothing partial is left after a failure or an abort), `env:` and
 * `file:` secrets, `data_contract_file`, and the SQLite key store shared with
 * the `keylink` CLI.
 * @packageDocumentation
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { createCipheriv, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { KeylinkError } from './errors.js';
import type { JobFileInput } from './jobfile.js';
import { kekMaterial, type KekSeal } from './kek.js';
import { EnginePool } from './pool.js';
import { chunksOf, discard, runWith, streamSink, type Environment, type Sink } from './run.js';
import type { JobDescription, JobResult, OutputInput, ResolvedLocation, RunOptionsBase, SourceInput } from './types.js';
import { initKeylink } from './wasm-loader.js';

export * from './index.js';
export { SqliteKeyStore, SQLITE_SCHEMA_VERSION, type SqliteKeyStoreOptions } from './stores/sqlite.js';

/** A source in Node: a file path, or anything the default entry point takes. */
export type NodeSource = SourceInput | string;
/** An output in Node: a file path, or a `WritableStream`. */
export type NodeOutput = OutputInput | string;

/** Options of {@link runBatchJob} in Node. */
export interface NodeRunOptions extends Partial<RunOptionsBase<NodeSource, NodeOutput>> {
  /** Replace outputs that already exist (default false: the job fails to start naming the target). */
  overwrite?: boolean;
  /**
   * Engine jobs in parallel, each in a worker thread (default: the number of
   * CPUs, at most 8; `1`: one engine job on the calling thread). Used for
   * inputs of more than two chunks (`chunkBytes`, 4 MiB by default); smaller
   * ones run on the calling thread. The input is cut into chunks that end on
   * record boundaries and outputs are written in input order, as the CLI's
   * `--workers`. Each engine job costs its own engine memory (key caches
   * included). For a fixed `seed`, outputs depend on the number of workers.
   */
  workers?: number;
}

/** The default number of engine jobs in Node. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

let compiled: Promise<WebAssembly.Module> | undefined;
/** The engine compiled once, for every worker thread. */
function engineModule(): Promise<WebAssembly.Module> {
  compiled ??= WebAssembly.compile(engineBytes() as BufferSource);
  return compiled;
}

/** The wasm engine shipped with the package, as bytes. */
export function engineBytes(): Uint8Array {
  return readFileSync(new URL('./wasm/keylink_bg.wasm', import.meta.url));
}

/** Where a job-file location is on the local file system (a `local` connector's root, or the working directory). */
function localPath(loc: ResolvedLocation, desc: JobDescription): string {
  if (loc.connector === null) return loc.path;
  const c = desc.connectors[loc.connector];
  if (c?.kind !== 'local' || c.root === undefined) {
    throw new KeylinkError('UNSUPPORTED', `connector \`${loc.connector}\` is ${c?.kind ?? 'unknown'}: the JS SDK reads and writes local files only; pass a stream instead`, { startError: true });
  }
  return join(c.root, loc.path);
}

/** An output file written to a temporary name and renamed into place on commit. */
async function fileSink(path: string, overwrite: boolean): Promise<Sink> {
  if (!overwrite && existsSync(path)) {
    throw new KeylinkError('TARGET_EXISTS', `target ${path} already exists (pass \`overwrite: true\` to replace it)`, { startError: true });
  }
  await mkdir(dirname(path) || '.', { recursive: true });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.keylink-tmp`);
  const fh: FileHandle = await open(tmp, 'wx', 0o600);
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await fh.close();
    }
  };
  return {
    async write(bytes) {
      let off = 0;
      while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
    },
    async commit() {
      await fh.sync();
      await close();
      if (!overwrite && existsSync(path)) {
        await unlink(tmp).catch(() => {});
        throw new KeylinkError('TARGET_EXISTS', `target ${path} appeared while the job ran`);
      }
      await rename(tmp, path);
    },
    async abort() {
      await close().catch(() => {});
      await unlink(tmp).catch(() => {});
    },
  };
}

function contractFileOf(json: string): string | undefined {
  try {
    const v = JSON.parse(json);
    const f = v?.data_contract_file ?? v?.dataContractFile;
    return typeof f === 'string' ? f : undefined;
  } catch {
    return undefined;
  }
}

/** AES-256-GCM under a KEK with node:crypto: synchronous, no thread pool round trip per key (WebCrypto's cost in Node). */
const nodeSeal: KekSeal = (kek, nonce, plaintext) => {
  const c = createCipheriv('aes-256-gcm', kekMaterial(kek), nonce, { authTagLength: 16 });
  return Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
};

const nodeEnvironment: Environment<NodeSource, NodeOutput> = {
  ready: () => initKeylink(engineBytes()),
  seal: nodeSeal,
  async contracts(json) {
    const f = contractFileOf(json);
    if (f === undefined) return {};
    try {
      return { [f]: await readFile(f, 'utf8') };
    } catch {
      return {}; // the engine reports the missing file at its JSON path
    }
  },
  async secret(ref) {
    if (ref.startsWith('env:')) {
      const v = process.env[ref.slice(4)];
      return v === undefined ? undefined : new TextEncoder().encode(v);
    }
    if (ref.startsWith('file:')) {
      try {
        let b = await readFile(ref.slice(5));
        let n = b.length;
        while (n > 0 && (b[n - 1] === 0x0a || b[n - 1] === 0x0d)) n--;
        return new Uint8Array(b.subarray(0, n));
      } catch {
        return undefined;
      }
    }
    return undefined;
  },
  source(source, desc, signal) {
    const path = source === undefined ? localPath(desc.source, desc) : typeof source === 'string' ? source : undefined;
    if (path === undefined) return chunksOf(source, signal);
    return createReadStream(path, { highWaterMark: 4 << 20, signal }) as AsyncIterable<Uint8Array>;
  },
  async sink(output, which, desc, { overwrite }) {
    if (output === null) return discard;
    if (output === undefined) {
      const m = /^derived\[(\d+)\]$/.exec(which);
      const loc = m ? desc.derived[Number(m[1])] : which === 'keys' ? desc.keys : desc.encrypted;
      return fileSink(localPath(loc, desc), overwrite);
    }
    if (typeof output === 'string') return fileSink(output, overwrite);
    return output ? streamSink(output) : discard;
  },
};

/**
 * Runs one batch job in Node. Like the default entry point's `runBatchJob`,
 * and additionally:
 * - `config` may be a path to a job file (text not starting with `{`);
 * - `source` and outputs may be file paths; left out, they are the job file's
 *   own locations (`local` connectors, relative to the working directory),
 *   as the CLI does;
 * - outputs are committed atomically (keys first); after a failure or an
 *   abort no output file and no temporary file is left;
 * - `env:` and `file:` secrets and `data_contract_file` are read by the SDK.
 *
 * @param config - the job file (object, JSON text, or a path to it)
 * @param options - source, outputs, key store (e.g. {@link SqliteKeyStore}), callbacks, signal
 * @returns the job's id, group, summary and states
 * @throws {@link JobFileError}, {@link InputError}, {@link AbortError}, {@link KeyStoreError}, {@link KeylinkError}
 */
export async function runBatchJob(config: JobFileInput, options: NodeRunOptions = {}): Promise<JobResult> {
  if (typeof config === 'string' && !config.trimStart().startsWith('{')) config = await readFile(config, 'utf8');
  const workers = options.workers ?? defaultWorkers();
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    throw new KeylinkError('INVALID_CONFIG', 'workers must be an integer from 1 to 64', { startError: true });
  }
  const env: Environment<NodeSource, NodeOutput> = {
    ...nodeEnvironment,
    parallel: { workers, start: async (r) => EnginePool.start({ ...r, module: await engineModule() }) },
  };
  return runWith(env, config, options as RunOptionsBase<NodeSource, NodeOutput>);
}

/** Initialises the engine from the package's own wasm file (done on first use by {@link runBatchJob}). */
export function initKeylinkNode(): Promise<void> {
  return initKeylink(engineBytes());
}
