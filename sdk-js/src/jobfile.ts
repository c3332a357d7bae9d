/**
 * TypeScript types of the job file (SPEC section 1), in snake_case as
 * written in the documentation. The engine also accepts lowerCamelCase keys:
 * {@link JobFileCamel} types that spelling, {@link JobFileInput} accepts
 * either. A test (`test/jobfile-types.test.mjs`) keeps these types in step
 * with the Rust config model (`core/src/config/parse*.rs`).
 * @packageDocumentation
 */

/** A secret: `env:NAME` (an environment variable), `file:PATH` (a file) or, where allowed, the value itself. */
export type SecretRef = string;

/** A reference to a named entry of `data_connectors`. */
export interface DataConnectorRef {
  /** Name of the connector in `data_connectors`. */
  name: string;
}

/** A folder on the local file system. */
export interface LocalConnector {
  /** The folder; relative paths are relative to the working directory. */
  root: string;
}

/** An Amazon S3 (or S3-compatible) bucket. */
export interface S3BucketConnector {
  bucket_name: string;
  region?: string;
  endpoint?: string;
  access_key_id?: SecretRef;
  secret_access_key?: SecretRef;
  session_token?: SecretRef;
  assume_role_arn?: string;
}

/** A Google Cloud Storage bucket. */
export interface GcsBucketConnector {
  bucket_name: string;
  endpoint?: string;
  credentials_json?: SecretRef;
}

/** Client-secret credentials for Azure Blob Storage. */
export interface AzureClientSecretCredential {
  tenant_id: string;
  client_id: string;
  client_secret: SecretRef;
}

/** An Azure Blob Storage container. */
export interface AzureBlobConnector {
  storage_account_uri: string;
  container_name: string;
  endpoint?: string;
  account_key?: SecretRef;
  client_secret_credential?: AzureClientSecretCredential;
}

/** A named location: exactly one kind. */
export type DataConnector =
  | { local: LocalConnector }
  | { s3_bucket: S3BucketConnector }
  | { google_cloud_storage_bucket: GcsBucketConnector }
  | { azure_blob_storage_container: AzureBlobConnector };

/** `{handle, name, version}`, an alias of `ref` when the contract is given separately. */
export interface EventContractRef {
  handle: string;
  name: string;
  version: string;
}

/** The data contract: which column keys the keys, which columns are PII. */
export interface DataContract {
  /** `handle/name/version`. */
  ref?: string;
  /** Alias of `ref`. */
  event_contract_ref?: EventContractRef;
  /** The column whose value (with the record's window) selects the key. */
  key_field: string;
  /** PII column → purpose level (a non-negative integer). */
  pii_fields: Record<string, number>;
  /** The column naming the data subject (kept as a keyed hash, for shredding). */
  data_subject_field?: string;
}

/** CSV options of the source. */
export interface SourceCsvOptions {
  /** `UTF-8` (default, alias `utf8`) or `ISO-8859-1` (alias `latin1`). */
  charset?: 'UTF-8' | 'utf8' | 'ISO-8859-1' | 'latin1';
  /** `,` (default), `;`, `|`, or a tab (`\t` or `tab`). */
  delimiter?: ',' | ';' | '|' | '\t' | 'tab';
}

/** CSV options of an output. */
export interface TargetCsvOptions {
  /** `always` (default: STRM's writer) or `necessary`. */
  quote?: 'always' | 'necessary';
  /** `crlf` (default) or `lf`. */
  line_end?: 'crlf' | 'lf';
}

/** The data file a job reads. */
export interface SourceData {
  data_connector_ref?: DataConnectorRef;
  path_prefix?: string;
  file_name: string;
  data_type?: { csv?: SourceCsvOptions };
}

/** Where an output goes; a missing `file_name` is derived from the source name. */
export interface Target {
  data_connector_ref?: DataConnectorRef;
  path_prefix?: string;
  file_name?: string;
  data_type?: { csv?: TargetCsvOptions };
}

/** The consent levels a `field_patterns` value maps to. */
export interface ConsentPattern {
  consent_levels: number[];
}

/** How a record's consent is read from its fields. */
export interface ConsentLevelExtractor {
  /** The column holding the consent. */
  field: string;
  /** Exact, case-sensitive value → levels. */
  field_patterns?: Record<string, ConsentPattern>;
  /** Splits the value into parts mapped one by one (needs `field_patterns`). */
  separator?: string;
  /** A consent plugin component (SPEC 8); not supported yet: jobs that name one are refused. */
  plugin?: string;
}

/** Consent: defaults and the extractor. */
export interface Consent {
  default_consent_levels?: number[];
  consent_level_extractor?: ConsentLevelExtractor;
}

/** How record timestamps are read. */
export interface TimestampConfig {
  field: string;
  /** `iso8601`, `epoch_millis`, `epoch_seconds`, a Java `DateTimeFormatter` pattern or a strftime pattern. */
  format: string;
  /** IANA zone for values without an offset (default `UTC`). */
  default_time_zone?: { id: string };
}

/** Encryption settings. */
export interface Encryption {
  /** Keys are shared by every job of a group (default: the job's own id). */
  batch_job_group_id?: string;
  /** Fixed per group at first use. */
  cipher?: 'aes-256-gcm' | 'aes-256-siv';
  associated_data?: 'none' | 'field-name' | 'field_name';
  timestamp_config: TimestampConfig;
  /** Key window length in whole hours, 1..8760 (default 24). */
  window_hours?: number;
  /** Days a key is kept after its window starts, 1..36500 (default 2556). */
  retention_days?: number;
  policy_id?: string;
  /**
   * Key-encryption key: a Tink JSON keyset with exactly one AES-256-GCM key,
   * as `env:NAME`, `file:PATH` (or inline). The keys output is then written
   * as Tink encrypted keysets under it (the CLI's `--kek` format). The SDK
   * resolves it through the `secrets` option (`{"env:KEYLINK_KEK": keysetJson}`),
   * and in Node from the environment or the file; a key store opened with a
   * KEK must hold the same one (`KEK_MISMATCH`), a store created without one
   * is refused (`KEK_NOT_EXPECTED`).
   */
  kek?: SecretRef;
}

/** An output without options of its own. */
export interface Output {
  target?: Target;
}

/** Columns to mask, by contract ref. */
export interface MaskedFieldPatterns {
  field_patterns: string[];
}

/** Columns of a derived output replaced by a keyed hash. */
export interface MaskedFields {
  /** `hmac-sha256` (default) or `murmur3`. */
  hash_type?: 'hmac-sha256' | 'murmur3';
  /** The hash key (inline, `env:` or `file:`). */
  seed: SecretRef;
  /** Contract ref → columns. */
  field_patterns?: Record<string, MaskedFieldPatterns>;
  /** Columns (instead of `field_patterns`). */
  fields?: string[];
}

/** One derived output. */
export interface DerivedData {
  target?: Target;
  consent_levels: number[];
  consent_level_type?: 'GRANULAR' | 'CUMULATIVE';
  masked_fields?: MaskedFields;
}

/** A job file, in snake_case. */
export interface JobFile {
  data_connectors?: Record<string, DataConnector>;
  data_contract?: DataContract;
  /** A path to the data contract as JSON (instead of `data_contract`). */
  data_contract_file?: string;
  source_data: SourceData;
  consent?: Consent;
  encryption: Encryption;
  encrypted_data?: Output;
  encryption_keys_data?: Output;
  derived_data?: DerivedData[];
  /** `fail` (default) or `skip`. */
  error_policy?: 'fail' | 'skip';
}

/** `snake_case` → `lowerCamelCase`, at the type level. */
export type CamelCase<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** A type with every (non-index) key in lowerCamelCase, recursively. */
export type DeepCamelCase<T> = T extends readonly (infer U)[]
  ? DeepCamelCase<U>[]
  : T extends object
    ? { [K in keyof T as K extends string ? CamelCase<K> : K]: DeepCamelCase<T[K]> }
    : T;

/** A job file in lowerCamelCase. */
export type JobFileCamel = DeepCamelCase<JobFile>;

/** A job file in either spelling (or its JSON text). */
export type JobFileInput = JobFile | JobFileCamel | string;
