/**
 * Errors thrown by keylink. Every error is an {@link KeylinkError} with a
 * stable {@link KeylinkError.code}; no message ever contains a cell value, a
 * key-field value or key material (rows, lines, columns and JSON paths are
 * named instead).
 * @packageDocumentation
 */

/** One problem of an invalid job file, at a JSON path such as `derived_data[1].consent_levels`. */
export interface JobFileProblem {
  /** JSON path of the problem, in the spelling the job file used. */
  path: string;
  /** What is wrong there. */
  message: string;
}

/**
 * The base class of every keylink error.
 *
 * `code` is stable across versions: `INVALID_CONFIG`, `MISSING_COLUMN`,
 * `EMPTY_INPUT`, `RAGGED_ROW`, `INVALID_ENCODING`, `BAD_TIMESTAMP`,
 * `KEY_USAGE_LIMIT`, `KEYS`, `KEY_FORMAT`, `CRYPTO`, `STATE`, `SECRET` (from the
 * engine), and `ABORTED`, `TARGET_EXISTS`, `UNSUPPORTED`, `KEY_STORE`, `IO`,
 * `WASM_NOT_INITIALISED` (from the SDK), plus the key store and KEK codes of
 * {@link KeyStoreError}.
 */
export class KeylinkError extends Error {
  /** Stable machine-readable error code. */
  readonly code: string;
  /** True when the job failed before reading data (lifecycle `ERROR_STARTING`). */
  readonly startError: boolean;
  /**
   * @param code - stable code
   * @param message - human-readable message (never containing PII)
   * @param options - the cause, and whether this is a start error
   */
  constructor(code: string, message: string, options: { cause?: unknown; startError?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeylinkError';
    this.code = code;
    this.startError = options.startError ?? false;
  }
}

/** The job file is invalid: every problem found, each with its JSON path. Code `INVALID_CONFIG`. */
export class JobFileError extends KeylinkError {
  /** Every problem found, in document order. */
  readonly problems: JobFileProblem[];
  /**
   * @param message - summary message listing the problems
   * @param problems - the problems with their JSON paths
   */
  constructor(message: string, problems: JobFileProblem[]) {
    super('INVALID_CONFIG', message, { startError: true });
    this.name = 'JobFileError';
    this.problems = problems;
  }
}

/**
 * The input data is not what the job expects: a missing column, a row with
 * the wrong number of fields, bytes invalid in the charset, an unparseable
 * timestamp. Names the row (1-based, header not counted), the physical line
 * and the column, never the value.
 */
export class InputError extends KeylinkError {
  /** 1-based data row, when the error is about a row. */
  readonly row?: number;
  /** 1-based physical line of the input, when known. */
  readonly line?: number;
  /** The column concerned, when there is one. */
  readonly column?: string;
  /**
   * @param code - stable code (`RAGGED_ROW`, `BAD_TIMESTAMP`, ...)
   * @param message - message naming row, line and column
   * @param at - the position
   */
  constructor(code: string, message: string, at: { row?: number; line?: number; column?: string; startError?: boolean }) {
    super(code, message, { startError: at.startError });
    this.name = 'InputError';
    this.row = at.row;
    this.line = at.line;
    this.column = at.column;
  }
}

/** The job was stopped through its `AbortSignal`. Code `ABORTED`; `name` is `AbortError`. */
export class AbortError extends KeylinkError {
  /** @param reason - the signal's reason, kept as `cause` */
  constructor(reason?: unknown) {
    super('ABORTED', 'the job was aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/**
 * A key store failed or refused a request, or a key-encryption key (KEK)
 * does not fit. Codes: `KEY_STORE` (storage error), `CIPHER_MISMATCH`,
 * `INVALID_PROPOSAL`, `SECRET_REQUIRED`, `SECRET_MISMATCH`,
 * `UNSUPPORTED_SCHEMA`, and for KEKs `KEK_REQUIRED` (the store's key
 * material is wrapped and no KEK was given), `KEK_MISMATCH` (another KEK than
 * the store's, or than the job file's `encryption.kek`), `KEK_NOT_EXPECTED` (a
 * KEK for a store created without one), `INVALID_KEK` (not a keyset with one
 * AES-256-GCM key), `UNWRAP` (a wrapped key does not open under the KEK:
 * tampered or moved). Messages name key ids and key links, never key
 * material.
 */
export class KeyStoreError extends KeylinkError {
  /**
   * @param code - `KEY_STORE`, `CIPHER_MISMATCH`, `KEK_REQUIRED`, ...
   * @param message - message naming the group or key link, never a value
   * @param cause - the underlying error
   * @param options - whether this is a start error (lifecycle `ERROR_STARTING`)
   */
  constructor(code: string, message: string, cause?: unknown, options: { startError?: boolean } = {}) {
    super(code, message, { cause, startError: options.startError });
    this.name = 'KeyStoreError';
  }
}

const INPUT_CODES = new Set(['MISSING_COLUMN', 'EMPTY_INPUT', 'RAGGED_ROW', 'INVALID_ENCODING', 'BAD_TIMESTAMP']);

/**
 * Turns an error thrown by the wasm engine (a plain `Error` with `code`) into
 * the matching subclass. Other values pass through unchanged.
 * @internal
 */
export function fromEngine(e: unknown): unknown {
  if (e instanceof KeylinkError || !(e instanceof Error) || typeof (e as { code?: unknown }).code !== 'string') return e;
  const x = e as Error & { code: string; startError?: boolean; problems?: JobFileProblem[]; row?: number; line?: number; column?: string };
  if (x.code === 'INVALID_CONFIG') return new JobFileError(x.message, x.problems ?? []);
  if (INPUT_CODES.has(x.code)) {
    return new InputError(x.code, x.message, { row: x.row, line: x.line, column: x.column, startError: x.startError });
  }
  return new KeylinkError(x.code, x.message, { startError: x.startError });
}
