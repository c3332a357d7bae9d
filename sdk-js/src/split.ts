/**
 * Cutting a CSV byte stream into chunks that end on record boundaries, so
 * that parallel engine jobs can take chunks independently: the engine's own
 * splitter (the core's `csv::split`, shared with the CLI's `--workers`),
 * which finds record ends exactly as the decoder does (quotes only at the
 * start of a field, doubled quotes, CR, LF and CRLF, blank lines), and
 * counts per chunk the records and line feeds, so a job's row and line
 * numbers map back to the file.
 * @packageDocumentation
 */
import { engineOrThrow } from './wasm-loader.js';

/** @internal Counts of a scanned span. */
export interface SpanCounts {
  records: number;
  lines: number;
}

/** @internal Record boundaries for one dialect (its delimiter). The engine must be initialised. */
export class Splitter {
  #inner: InstanceType<ReturnType<typeof engineOrThrow>['RecordSplitter']>;

  constructor(delimiter: number) {
    this.#inner = new (engineOrThrow().RecordSplitter)(delimiter);
  }

  /** The longest prefix of `block` (which starts on a record boundary) that ends on one (end 0: none), with its counts. */
  cut(block: Uint8Array): { end: number; counts: SpanCounts } {
    const [end, records, lines] = this.#inner.cut(block);
    return { end, counts: { records, lines } };
  }

  /** Counts of the input's final span (its last record ends with the input). */
  finish(tail: Uint8Array): SpanCounts {
    const [records, lines] = this.#inner.finish(tail);
    return { records, lines };
  }

  /** The end of the first record of `bytes` (the header), if complete. */
  firstRecordEnd(bytes: Uint8Array): number | undefined {
    return this.#inner.firstRecordEnd(bytes) ?? undefined;
  }

  free(): void {
    this.#inner.free();
  }
}
