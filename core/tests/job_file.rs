//! The job file (SPEC section 1): parsing into the typed model, and
//! validation that reports every problem at once with its JSON path.
//!
//! Example job files live in `tests/vectors/jobs/` and are shared with other
//! tests (Rust and JS).
use keylink_core::config::parse::redacted_json;
use keylink_core::config::*;
use keylink_core::consent::ConsentLevels;
use keylink_core::time::TimestampFormat;
use keylink_core::{Error, ErrorKind};
use serde_json::{Value, json};

fn vector(name: &str) -> String {
    let path = format!("{}/../tests/vectors/jobs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn no_files(path: &str) -> Result<String, String> {
    Err(format!("no file `{path}` in this test"))
}

fn parse(json: &str) -> Result<JobConfig, Error> {
    JobConfig::from_json(json, &mut no_files)
}

fn parse_ok(json: &str) -> JobConfig {
    parse(json).unwrap_or_else(|e| panic!("{e}"))
}

/// The problems of an invalid job file, as (path, message).
fn problems_with(json: &str, load: &mut dyn FnMut(&str) -> Result<String, String>) -> Vec<(String, String)> {
    match JobConfig::from_json(json, load) {
        Ok(_) => panic!("expected problems, the job file is valid"),
        Err(e) => match e.into_kind() {
            ErrorKind::InvalidConfig(ps) => ps.into_iter().map(|p| (p.path, p.message)).collect(),
            other => panic!("expected InvalidConfig, got {other:?}"),
        },
    }
}

fn problems(json: &str) -> Vec<(String, String)> {
    problems_with(json, &mut no_files)
}

fn paths(json: &str) -> Vec<String> {
    problems(json).into_iter().map(|(p, _)| p).collect()
}

/// The one problem of a job file.
fn problem(json: &str) -> (String, String) {
    let ps = problems(json);
    assert_eq!(ps.len(), 1, "expected one problem, got {ps:#?}");
    ps.into_iter().next().unwrap()
}

/// A valid minimal job as a JSON value, to be changed by a test.
fn minimal() -> Value {
    serde_json::from_str(&vector("minimal.json")).unwrap()
}

/// `base` with the value at a JSON pointer set (objects are created on the way).
fn with(mut base: Value, pointer: &str, value: Value) -> String {
    let mut cur = &mut base;
    for part in pointer.trim_start_matches('/').split('/') {
        cur = match cur {
            Value::Array(a) => &mut a[part.parse::<usize>().unwrap()],
            v => {
                if !v.is_object() {
                    *v = json!({});
                }
                v.as_object_mut().unwrap().entry(part).or_insert(Value::Null)
            }
        };
    }
    *cur = value;
    base.to_string()
}

fn without(mut base: Value, pointer: &str) -> String {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    base.pointer_mut(if parent.is_empty() { "" } else { parent }).and_then(Value::as_object_mut).unwrap().remove(key);
    base.to_string()
}

fn p(path: &str, message: &str) -> (String, String) {
    (path.into(), message.into())
}

// ------------------------------------------------------------ valid examples

#[test]
fn spec_example_parses_into_the_model() {
    let c = parse_ok(&vector("spec_example.json"));

    assert_eq!(c.data_connectors.len(), 3);
    assert_eq!(c.data_connectors["raw"], ConnectorConfig::Local { root: "data/in".into() });
    assert_eq!(
        c.data_connectors["lake"],
        ConnectorConfig::S3 {
            bucket_name: "lake".into(),
            region: Some("eu-west-1".into()),
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            assume_role_arn: None,
        }
    );

    assert_eq!(
        c.data_contract,
        DataContract {
            reference: "acme/clickstream/1.0.0".into(),
            key_field: "session_id".into(),
            pii_fields: vec![("email".into(), 1), ("ip_address".into(), 1), ("customer_id".into(), 2)],
            data_subject_field: Some("customer_id".into()),
        }
    );

    assert_eq!(
        c.source,
        SourceConfig {
            location: Location { connector: Some("raw".into()), path_prefix: None, file_name: "events.csv".into() },
            charset: Charset::Utf8,
            delimiter: b',',
        }
    );

    assert_eq!(c.consent.default_levels, ConsentLevels::empty());
    let ex = c.consent.extractor.as_ref().unwrap();
    assert_eq!(ex.field, "consent");
    assert_eq!(
        ex.field_patterns,
        Some(vec![
            ("analytics".into(), ConsentLevels::new(vec![1])),
            ("marketing".into(), ConsentLevels::new(vec![1, 2])),
        ])
    );
    assert_eq!(ex.separator, None);
    assert_eq!(ex.plugin, None);

    let e = &c.encryption;
    assert_eq!(e.batch_job_group_id.as_deref(), Some("clickstream-2026"));
    assert_eq!(e.cipher, CipherKind::Aes256Gcm);
    assert_eq!(e.associated_data, AssociatedData::FieldName);
    assert_eq!(e.timestamp.field, "timestamp");
    assert_eq!(e.timestamp.format, TimestampFormat::Iso8601);
    assert_eq!(e.timestamp.format_text, "iso8601");
    assert_eq!(e.timestamp.zone, chrono_tz::Europe::Amsterdam);
    assert_eq!((e.window_hours, e.retention_days, &e.policy_id, &e.kek), (24, 2556, &None, &None));
    assert_eq!(c.window_ms(), 86_400_000);

    assert_eq!(
        c.encrypted_data,
        TargetConfig {
            location: Location {
                connector: Some("lake".into()),
                path_prefix: None,
                file_name: "events/encrypted.csv".into()
            },
            quote: QuoteStyle::Always,
            line_end: LineEnd::CrLf,
        }
    );
    assert_eq!(c.encryption_keys_data.location.connector.as_deref(), Some("vault"));
    assert_eq!(c.encryption_keys_data.location.path(), "events/keys.csv");

    assert_eq!(c.derived_data.len(), 1);
    let d = &c.derived_data[0];
    assert_eq!(d.target.location.path(), "events/analytics.csv");
    assert_eq!(d.consent_levels, ConsentLevels::new(vec![1]));
    assert_eq!(d.consent_level_type, ConsentLevelType::Granular);
    assert_eq!(
        d.masked_fields,
        Some(MaskedFields {
            hash_type: HashType::HmacSha256,
            seed: SecretRef::Env("MASK_SEED".into()),
            fields: vec!["customer_id".into()],
        })
    );
    assert_eq!(c.error_policy, ErrorPolicy::Fail);
}

#[test]
fn lower_camel_case_parses_identically() {
    let camel = vector("spec_example_camel.json");
    assert!(camel.contains("dataConnectors") && camel.contains("keyField") && camel.contains("batchJobGroupId"));
    assert_eq!(parse_ok(&camel), parse_ok(&vector("spec_example.json")));
}

#[test]
fn minimal_job_gets_the_defaults() {
    let c = parse_ok(&vector("minimal.json"));
    assert!(c.data_connectors.is_empty());
    assert_eq!(c.source.location, Location { connector: None, path_prefix: None, file_name: "in.csv".into() });
    assert_eq!((c.source.charset, c.source.delimiter), (Charset::Utf8, b','));
    assert_eq!(c.consent.default_levels, ConsentLevels::new(vec![1]));
    assert_eq!(c.consent.extractor, None);
    assert_eq!(c.encryption.cipher, CipherKind::Aes256Gcm);
    assert_eq!(c.encryption.associated_data, AssociatedData::FieldName);
    assert_eq!(c.encryption.timestamp.zone, chrono_tz::UTC);
    assert_eq!(c.encryption.batch_job_group_id, None);
    assert_eq!((c.encryption.window_hours, c.encryption.retention_days), (24, 2556));
    assert_eq!(
        c.encrypted_data,
        TargetConfig {
            location: Location { connector: None, path_prefix: None, file_name: "in-encrypted.csv".into() },
            quote: QuoteStyle::Always,
            line_end: LineEnd::CrLf,
        }
    );
    assert_eq!(c.encryption_keys_data.location.file_name, "in-keys.csv");
    assert!(c.derived_data.is_empty());
    assert_eq!(c.error_policy, ErrorPolicy::Fail);
}

#[test]
fn siv_and_murmur3_example() {
    let c = parse_ok(&vector("siv_murmur3.json"));
    assert_eq!(c.encryption.cipher, CipherKind::Aes256Siv);
    assert_eq!(c.encryption.associated_data, AssociatedData::None, "SIV defaults to no associated data");
    assert_eq!(c.encryption.timestamp.format, TimestampFormat::EpochSeconds);
    assert_eq!((c.encryption.window_hours, c.encryption.retention_days), (1, 30));
    assert_eq!(c.encryption.policy_id.as_deref(), Some("5f0a7d36-4b4e-4c5d-9a3e-1d2c3b4a5e6f"));
    assert_eq!(c.consent.extractor.as_ref().unwrap().field_patterns, None);
    assert_eq!(c.source.location.path(), "in/demo.csv");
    assert_eq!(c.encrypted_data.location.path(), "out/demo-encrypted.csv");
    assert_eq!((c.encrypted_data.quote, c.encrypted_data.line_end), (QuoteStyle::Necessary, LineEnd::Lf));
    assert_eq!(c.encryption_keys_data.location.path(), "out/demo-keys.csv");
    let m = c.derived_data[0].masked_fields.as_ref().unwrap();
    assert_eq!(m.hash_type, HashType::Murmur3);
    assert_eq!(m.seed, SecretRef::Inline("hi-there".into()));
    assert_eq!(m.fields, vec!["uniqueIdentifier".to_string(), "sessionId".into()]);
    assert_eq!(c.derived_data[0].target.location.path(), "out/demo-derived-1.csv");
    assert_eq!(c.derived_data[1].consent_level_type, ConsentLevelType::Cumulative);
    assert_eq!(c.derived_data[1].target.location.path(), "out/demo-derived-2.csv");
}

#[test]
fn skip_policy_latin1_semicolon_example() {
    let c = parse_ok(&vector("skip_latin1_semicolon.json"));
    assert_eq!(c.error_policy, ErrorPolicy::Skip);
    assert_eq!((c.source.charset, c.source.delimiter), (Charset::Iso8859_1, b';'));
    assert_eq!(c.encryption.timestamp.zone, chrono_tz::Europe::Berlin);
    let ex = c.consent.extractor.as_ref().unwrap();
    assert_eq!(ex.separator.as_deref(), Some("|"));
    let d = &c.derived_data[0];
    assert_eq!(d.target.location.connector.as_deref(), Some("shop"));
    assert_eq!(d.target.location.path(), "out/orders-derived-1-2.csv");
    let m = d.masked_fields.as_ref().unwrap();
    assert_eq!((m.hash_type, &m.fields), (HashType::HmacSha256, &vec!["order_id".to_string()]));
    assert_eq!(m.seed, SecretRef::Env("ORDERS_MASK_SEED".into()));
}

// ------------------------------------------------------- all problems at once

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let job = r#"{
      "data_connectors": { "lake": { "s3_bucket": { "region": "eu-west-1" } } },
      "data_contract": { "ref": "acme/clickstream", "key_feild": "session_id", "pii_fields": { "email": -1 } },
      "source_data": { "data_connector_ref": { "name": "raw" }, "file_name": "events.csv",
                       "data_type": { "csv": { "charset": "UTF-16", "delimiter": ":" } } },
      "encryption": { "cipher": "aes-128-gcm", "window_hours": 0,
                      "timestamp_config": { "field": "ts", "format": "iso8601",
                                            "default_time_zone": { "id": "Europe/Amsterdm" } } },
      "derived_data": [
        { "consent_levels": [1] },
        { "consent_levels": [1, 2], "consent_level_type": "CUMULATIVE" }
      ],
      "error_policy": "retry"
    }"#;
    assert_eq!(
        problems(job),
        vec![
            p("data_connectors.lake.s3_bucket.bucket_name", "required"),
            p("data_contract.key_feild", "unknown key; did you mean `key_field`?"),
            p("data_contract.ref", "must be `handle/name/version` (three non-empty parts)"),
            p("data_contract.key_field", "required"),
            p("data_contract.pii_fields.email", "must be a non-negative integer (at most 4294967295)"),
            p("source_data.data_type.csv.charset", "`UTF-16` is not one of `UTF-8`, `utf8`, `ISO-8859-1`, `latin1`"),
            p("source_data.data_type.csv.delimiter", "must be one of `,` `;` `|` or a tab (`\\t` or `tab`)"),
            p("encryption.cipher", "`aes-128-gcm` is not one of `aes-256-gcm`, `aes-256-siv`"),
            p(
                "encryption.timestamp_config.default_time_zone.id",
                "`Europe/Amsterdm` is not an IANA time zone; did you mean `Europe/Amsterdam`?"
            ),
            p("encryption.window_hours", "must be a whole number of hours from 1 to 8760"),
            p("derived_data[1].consent_levels", "CUMULATIVE needs exactly one level"),
            p("error_policy", "`retry` is not one of `fail`, `skip`"),
            p("source_data.data_connector_ref.name", "no data connector named `raw` in `data_connectors`"),
        ]
    );
}

#[test]
fn problems_in_camel_case_are_reported_in_camel_case() {
    let job = r#"{
      "dataContract": { "ref": "a/b/1", "keyField": "k", "piiFields": {}, "dataSubjectFeld": "x" },
      "sourceData": { "pathPrefix": "in" },
      "encryption": { "timestampConfig": { "field": "ts", "format": "iso8601" }, "windowHours": 1.5 },
      "derivedData": [ { "consentLevels": [] } ]
    }"#;
    assert_eq!(
        problems(job),
        vec![
            p("dataContract.dataSubjectFeld", "unknown key; did you mean `dataSubjectField`?"),
            p("sourceData.fileName", "required"),
            p("encryption.windowHours", "must be a whole number of hours from 1 to 8760"),
            p("derivedData[0].consentLevels", "must list at least one level"),
        ]
    );
}

// ------------------------------------------------------------------ the rules

#[test]
fn invalid_json_is_one_problem_at_the_root_without_content() {
    let ps = problems("{\n  \"data_contract\": { \"seed\": \"s3cr3t\" \n");
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].0, "$");
    assert!(ps[0].1.starts_with("invalid JSON"), "{}", ps[0].1);
    assert!(ps[0].1.contains("line 3"), "{}", ps[0].1);
    assert!(!ps[0].1.contains("s3cr3t"));

    let ps = problems(r#"{"a": 1,}"#);
    assert_eq!(ps[0].0, "$");
    assert!(ps[0].1.contains("line 1 column 9"), "{}", ps[0].1);

    assert_eq!(problem("[1, 2]"), p("$", "must be an object, found an array"));
}

#[test]
fn unknown_keys_with_and_without_a_suggestion() {
    assert_eq!(
        problem(&with(minimal(), "/data_contract/keyFeld", json!("x"))),
        p("data_contract.keyFeld", "unknown key; did you mean `keyField`?")
    );
    assert_eq!(
        problem(&with(minimal(), "/encryption/windw_hours", json!(2))),
        p("encryption.windw_hours", "unknown key; did you mean `window_hours`?")
    );
    assert_eq!(problem(&with(minimal(), "/colour", json!("blue"))), p("colour", "unknown key"));
    // Keys are not accepted in other spellings than the two.
    assert_eq!(
        problem(&with(minimal(), "/Source_Data", json!({}))),
        p("Source_Data", "unknown key; did you mean `source_data`?")
    );
}

#[test]
fn misplaced_csv_options_get_a_hint() {
    let (path, message) = problem(&with(minimal(), "/source_data/data_type/csv/quote", json!("necessary")));
    assert_eq!(path, "source_data.data_type.csv.quote");
    assert!(message.starts_with("unknown key (") && message.contains("target"), "{message}");
    let (path, message) = problem(&with(minimal(), "/encrypted_data/target/data_type/csv/delimiter", json!(";")));
    assert_eq!(path, "encrypted_data.target.data_type.csv.delimiter");
    assert!(message.contains("source_data"), "{message}");
}

#[test]
fn a_key_in_both_spellings_is_a_problem() {
    let job = with(minimal(), "/data_contract/keyField", json!("other"));
    assert_eq!(problem(&job), p("data_contract.keyField", "given twice, as `key_field` and `keyField`"));
}

#[test]
fn missing_required_sections() {
    assert_eq!(
        problems("{}"),
        vec![
            p("data_contract", "required (or `data_contract_file`)"),
            p("source_data", "required"),
            p("encryption", "required"),
        ]
    );
    assert_eq!(
        problem(&without(minimal(), "/encryption/timestamp_config/format")),
        p("encryption.timestamp_config.format", "required")
    );
}

#[test]
fn cumulative_needs_exactly_one_level() {
    let base = with(
        minimal(),
        "/derived_data",
        json!([
            { "consent_levels": [1] },
            { "consent_levels": [1, 2], "consent_level_type": "CUMULATIVE" }
        ]),
    );
    assert_eq!(problem(&base), p("derived_data[1].consent_levels", "CUMULATIVE needs exactly one level"));

    let ok = parse_ok(&with(
        minimal(),
        "/derived_data",
        json!([{ "consent_levels": [2], "consent_level_type": "cumulative" }]),
    ));
    assert_eq!(ok.derived_data[0].consent_level_type, ConsentLevelType::Cumulative);
}

#[test]
fn levels_are_non_negative_integers_that_fit_u32() {
    let job = with(minimal(), "/derived_data", json!([{ "consent_levels": [1, -2, 4294967296_u64, "3", 1.5] }]));
    assert_eq!(
        paths(&job),
        vec![
            "derived_data[0].consent_levels[1]",
            "derived_data[0].consent_levels[2]",
            "derived_data[0].consent_levels[3]",
            "derived_data[0].consent_levels[4]"
        ]
    );
    let ok = parse_ok(&with(minimal(), "/derived_data", json!([{ "consent_levels": [4294967295_u64, 0, 0] }])));
    assert_eq!(ok.derived_data[0].consent_levels.as_slice(), &[0, 4294967295]);
    assert_eq!(
        problem(&with(minimal(), "/consent/default_consent_levels", json!([true]))),
        p("consent.default_consent_levels[0]", "must be a non-negative integer (at most 4294967295)")
    );
}

#[test]
fn connector_references_must_resolve() {
    let job = with(minimal(), "/data_connectors", json!({ "lake": { "local": { "root": "l" } } }));
    let job: Value = serde_json::from_str(&job).unwrap();
    let job = with(job, "/encrypted_data/target/data_connector_ref/name", json!("lak"));
    let job: Value = serde_json::from_str(&job).unwrap();
    let job = with(
        job,
        "/derived_data",
        json!([{ "target": { "data_connector_ref": { "name": "warehouse" } }, "consent_levels": [1] }]),
    );
    assert_eq!(
        problems(&job),
        vec![
            p(
                "encrypted_data.target.data_connector_ref.name",
                "no data connector named `lak` in `data_connectors`; did you mean `lake`?"
            ),
            p(
                "derived_data[0].target.data_connector_ref.name",
                "no data connector named `warehouse` in `data_connectors`"
            ),
        ]
    );
    assert_eq!(
        problem(&with(minimal(), "/source_data/data_connector_ref/name", json!("raw"))),
        p("source_data.data_connector_ref.name", "no data connector named `raw`: `data_connectors` is empty")
    );
}

#[test]
fn a_connector_has_exactly_one_kind() {
    let job = with(
        minimal(),
        "/data_connectors",
        json!({
            "none": {},
            "two": { "local": { "root": "a" }, "s3_bucket": { "bucket_name": "b" } },
            "az": { "azure_blob_storage_container": {
                "storage_account_uri": "https://acct.blob.core.windows.net", "container_name": "c",
                "account_key": "env:AZ_KEY",
                "client_secret_credential": { "tenant_id": "t", "client_secret": "inline-secret-value" } } }
        }),
    );
    let ps = problems(&job);
    assert_eq!(
        ps.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
        vec![
            "data_connectors.none",
            "data_connectors.two",
            "data_connectors.az.azure_blob_storage_container.client_secret_credential",
            "data_connectors.az.azure_blob_storage_container.client_secret_credential.client_id",
        ]
    );
    assert!(ps[0].1.starts_with("needs exactly one of `local`"), "{}", ps[0].1);
    assert!(ps[1].1.starts_with("has more than one kind"), "{}", ps[1].1);
    assert!(ps.iter().all(|(_, m)| !m.contains("inline-secret-value")));
}

#[test]
fn every_connector_kind_with_its_credentials() {
    let job = with(
        minimal(),
        "/data_connectors",
        json!({
            "s3": { "s3_bucket": { "bucket_name": "b", "endpoint": "http://127.0.0.1:9000",
                                   "access_key_id": "env:AWS_ID", "secret_access_key": "file:/run/aws", "session_token": "tok",
                                   "assume_role_arn": "arn:aws:iam::1:role/r" } },
            "gcs": { "googleCloudStorageBucket": { "bucketName": "g", "credentialsJson": "file:gcs.json" } },
            "az": { "azure_blob_storage_container": {
                "storage_account_uri": "https://acct.blob.core.windows.net", "container_name": "c",
                "client_secret_credential": { "tenant_id": "t", "client_id": "i", "client_secret": "env:AZ" } } }
        }),
    );
    let c = parse_ok(&job);
    assert_eq!(
        c.data_connectors["s3"],
        ConnectorConfig::S3 {
            bucket_name: "b".into(),
            region: None,
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some(SecretRef::Env("AWS_ID".into())),
            secret_access_key: Some(SecretRef::File("/run/aws".into())),
            session_token: Some(SecretRef::Inline("tok".into())),
            assume_role_arn: Some("arn:aws:iam::1:role/r".into()),
        }
    );
    assert_eq!(
        c.data_connectors["gcs"],
        ConnectorConfig::Gcs {
            bucket_name: "g".into(),
            endpoint: None,
            credentials_json: Some(SecretRef::File("gcs.json".into()))
        }
    );
    assert_eq!(
        c.data_connectors["az"],
        ConnectorConfig::Azure {
            storage_account_uri: "https://acct.blob.core.windows.net".into(),
            container_name: "c".into(),
            endpoint: None,
            account_key: None,
            tenant_id: Some("t".into()),
            client_id: Some("i".into()),
            client_secret: Some(SecretRef::Env("AZ".into())),
        }
    );
}

#[test]
fn delimiters() {
    let delim = |d: Value| with(minimal(), "/source_data/data_type/csv/delimiter", d);
    for (given, byte) in [(",", b','), (";", b';'), ("|", b'|'), ("\t", b'\t'), ("tab", b'\t'), ("TAB", b'\t')] {
        assert_eq!(parse_ok(&delim(json!(given))).source.delimiter, byte, "{given:?}");
    }
    for bad in [json!(":"), json!(",,"), json!(""), json!(44)] {
        assert_eq!(
            problem(&delim(bad)),
            p("source_data.data_type.csv.delimiter", "must be one of `,` `;` `|` or a tab (`\\t` or `tab`)")
        );
    }
}

#[test]
fn charsets() {
    let charset = |c: &str| with(minimal(), "/source_data/data_type/csv/charset", json!(c));
    for (given, want) in [
        ("UTF-8", Charset::Utf8),
        ("utf-8", Charset::Utf8),
        ("utf8", Charset::Utf8),
        ("ISO-8859-1", Charset::Iso8859_1),
        ("iso-8859-1", Charset::Iso8859_1),
        ("latin1", Charset::Iso8859_1),
        ("LATIN1", Charset::Iso8859_1),
    ] {
        assert_eq!(parse_ok(&charset(given)).source.charset, want, "{given}");
    }
    assert_eq!(
        problem(&charset("windows-1252")),
        p("source_data.data_type.csv.charset", "`windows-1252` is not one of `UTF-8`, `utf8`, `ISO-8859-1`, `latin1`")
    );
}

#[test]
fn time_zones() {
    let zone = |z: &str| with(minimal(), "/encryption/timestamp_config/default_time_zone/id", json!(z));
    assert_eq!(parse_ok(&zone("America/New_York")).encryption.timestamp.zone, chrono_tz::America::New_York);
    assert_eq!(
        problem(&zone("Mars/Olympus_Mons")),
        p(
            "encryption.timestamp_config.default_time_zone.id",
            "`Mars/Olympus_Mons` is not an IANA time zone (like `UTC` or `Europe/Amsterdam`)"
        )
    );
    assert_eq!(
        problem(&zone("Europe/Amstrdam")).1,
        "`Europe/Amstrdam` is not an IANA time zone; did you mean `Europe/Amsterdam`?"
    );
}

#[test]
fn window_hours_are_whole_numbers_in_range() {
    let hours = |h: Value| with(minimal(), "/encryption/window_hours", h);
    for bad in [json!(0), json!(1.5), json!(8761), json!(-1), json!("24")] {
        assert_eq!(
            problem(&hours(bad.clone())),
            p("encryption.window_hours", "must be a whole number of hours from 1 to 8760"),
            "{bad}"
        );
    }
    assert_eq!(parse_ok(&hours(json!(1))).window_ms(), 3_600_000);
    assert_eq!(parse_ok(&hours(json!(8760))).encryption.window_hours, 8760);
    assert_eq!(parse_ok(&hours(json!(48.0))).encryption.window_hours, 48);
}

#[test]
fn encryption_options() {
    let enc = |k: &str, v: Value| with(minimal(), &format!("/encryption/{k}"), v);
    let c = parse_ok(&enc("associated_data", json!("none")));
    assert_eq!((c.encryption.cipher, c.encryption.associated_data), (CipherKind::Aes256Gcm, AssociatedData::None));
    let siv: Value = serde_json::from_str(&enc("cipher", json!("aes-256-siv"))).unwrap();
    let c = parse_ok(&with(siv, "/encryption/associatedData", json!("field-name")));
    assert_eq!((c.encryption.cipher, c.encryption.associated_data), (CipherKind::Aes256Siv, AssociatedData::FieldName));
    assert_eq!(parse_ok(&enc("kek", json!("env:KEK"))).encryption.kek, Some(SecretRef::Env("KEK".into())));
    assert_eq!(problem(&enc("kek", json!("env:"))), p("encryption.kek", "`env:` must name an environment variable"));
    assert_eq!(parse_ok(&enc("retention_days", json!(7))).encryption.retention_days, 7);
    assert_eq!(
        problem(&enc("retention_days", json!(0))),
        p("encryption.retention_days", "must be a whole number of days from 1 to 36500")
    );
    assert_eq!(problem(&enc("batch_job_group_id", json!(""))), p("encryption.batch_job_group_id", "must not be empty"));
    assert_eq!(
        problem(&enc("associated_data", json!("column"))),
        p("encryption.associated_data", "`column` is not one of `none`, `field-name`, `field_name`")
    );
}

#[test]
fn timestamp_keywords_need_no_pattern_compiler() {
    for (text, want) in [
        ("iso8601", TimestampFormat::Iso8601),
        ("epoch_millis", TimestampFormat::EpochMillis),
        ("epoch_seconds", TimestampFormat::EpochSeconds),
    ] {
        let c = parse_ok(&with(minimal(), "/encryption/timestamp_config/format", json!(text)));
        assert_eq!((c.encryption.timestamp.format, c.encryption.timestamp.format_text.as_str()), (want, text));
    }
}

/// Needs `time::TimestampFormat::parse` (being written in parallel).
#[test]
#[ignore = "needs time::TimestampFormat::parse; run with --ignored once it lands"]
fn timestamp_patterns_are_compiled_and_bad_ones_reported() {
    let format = |f: &str| with(minimal(), "/encryption/timestamp_config/format", json!(f));
    let c = parse_ok(&format("yyyy-MM-dd HH:mm:ss"));
    assert_eq!(c.encryption.timestamp.format_text, "yyyy-MM-dd HH:mm:ss");
    parse_ok(&format("%Y-%m-%d %H:%M:%S"));
    let (path, message) = problem(&format("yyyy-MM-dd 'unterminated"));
    assert_eq!(path, "encryption.timestamp_config.format");
    assert!(!message.is_empty());
}

#[test]
fn contract_or_contract_file_not_both_nor_neither() {
    let both = with(minimal(), "/data_contract_file", json!("contract.json"));
    assert_eq!(
        problem(&both),
        p("data_contract_file", "give either `data_contract` or `data_contract_file`, not both")
    );
    assert_eq!(
        problems(&without(minimal(), "/data_contract")),
        vec![p("data_contract", "required (or `data_contract_file`)")]
    );
    let camel: Value = serde_json::from_str(&without(minimal(), "/data_contract")).unwrap();
    let camel = with(camel, "/sourceData", json!({ "fileName": "in.csv" }));
    let camel: Value = serde_json::from_str(&without(serde_json::from_str(&camel).unwrap(), "/source_data")).unwrap();
    assert_eq!(problems(&camel.to_string()), vec![p("dataContract", "required (or `data_contract_file`)")]);
}

#[test]
fn contract_from_a_file() {
    let job = with(
        serde_json::from_str(&without(minimal(), "/data_contract")).unwrap(),
        "/data_contract_file",
        json!("contracts/clicks.json"),
    );
    let mut asked = Vec::new();
    let c = JobConfig::from_json(&job, &mut |path| {
        asked.push(path.to_string());
        Ok(r#"{ "eventContractRef": { "handle": "acme", "name": "clicks", "version": "2.0.0" },
                "keyField": "session", "piiFields": { "email": 1, "ip": 2 } }"#
            .into())
    })
    .unwrap();
    assert_eq!(asked, vec!["contracts/clicks.json"]);
    assert_eq!(
        c.data_contract,
        DataContract {
            reference: "acme/clicks/2.0.0".into(),
            key_field: "session".into(),
            pii_fields: vec![("email".into(), 1), ("ip".into(), 2)],
            data_subject_field: None,
        }
    );
}

#[test]
fn contract_file_problems_have_paths_into_the_file() {
    let job = with(
        serde_json::from_str(&without(minimal(), "/data_contract")).unwrap(),
        "/data_contract_file",
        json!("c.json"),
    );

    // The file cannot be read.
    assert_eq!(
        problems_with(&job, &mut |_| Err("permission denied".into())),
        vec![p("data_contract_file", "cannot read `c.json`: permission denied")]
    );
    // The file is not JSON.
    let ps = problems_with(&job, &mut |_| Ok("{ \"ref\": ".into()));
    assert_eq!(ps.len(), 1);
    assert_eq!(ps[0].0, "data_contract_file(c.json)");
    assert!(ps[0].1.starts_with("invalid JSON") && ps[0].1.contains("line 1"), "{}", ps[0].1);
    // Problems inside the file.
    assert_eq!(
        problems_with(&job, &mut |_| Ok(
            r#"{ "ref": "a/b/1", "event_contract_ref": { "handle": "a", "name": "b", "version": "1" },
                 "keyfield": "k", "pii_fields": { "email": "1" } }"#
                .into()
        )),
        vec![
            p("data_contract_file(c.json).keyfield", "unknown key; did you mean `key_field`?"),
            p("data_contract_file(c.json).event_contract_ref", "give either `ref` or `event_contract_ref`, not both"),
            p("data_contract_file(c.json).key_field", "required"),
            p("data_contract_file(c.json).pii_fields.email", "must be a non-negative integer (at most 4294967295)"),
        ]
    );
    assert_eq!(
        problems_with(&job, &mut |_| Ok(
            r#"{ "event_contract_ref": { "handle": "a", "name": "" }, "key_field": "k", "pii_fields": {} }"#.into()
        )),
        vec![
            p("data_contract_file(c.json).event_contract_ref.name", "must not be empty"),
            p("data_contract_file(c.json).event_contract_ref.version", "required"),
        ]
    );
    // A wrong type for the file name itself.
    let job = with(serde_json::from_str(&job).unwrap(), "/data_contract_file", json!(7));
    assert_eq!(problem(&job), p("data_contract_file", "must be a string, found a number"));
}

#[test]
fn contract_ref_must_have_three_parts() {
    for bad in ["acme/clicks", "acme//1.0.0", "a/b/c/d", "/b/c"] {
        assert_eq!(
            problem(&with(minimal(), "/data_contract/ref", json!(bad))),
            p("data_contract.ref", "must be `handle/name/version` (three non-empty parts)"),
            "{bad}"
        );
    }
    // The alias is accepted inline too.
    let alias = without(minimal(), "/data_contract/ref");
    let alias = with(
        serde_json::from_str(&alias).unwrap(),
        "/data_contract/event_contract_ref",
        json!({ "handle": "h", "name": "n", "version": "1" }),
    );
    assert_eq!(parse_ok(&alias).data_contract.reference, "h/n/1");
}

#[test]
fn empty_pii_fields_are_allowed() {
    let c = parse_ok(&with(minimal(), "/data_contract/pii_fields", json!({})));
    assert!(c.data_contract.pii_fields.is_empty());
    assert_eq!(problem(&without(minimal(), "/data_contract/pii_fields")), p("data_contract.pii_fields", "required"));
}

#[test]
fn derived_file_names_come_from_the_source_stem() {
    let job = with(minimal(), "/source_data", json!({ "path_prefix": "in", "file_name": "daily/events.2026.csv" }));
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/derived_data",
        json!([
            { "consent_levels": [2, 1] },
            { "consent_levels": [3], "target": { "path_prefix": "out" } },
            { "consent_levels": [1], "target": { "file_name": "named.csv" } }
        ]),
    );
    let c = parse_ok(&job);
    assert_eq!(c.encrypted_data.location.path(), "events.2026-encrypted.csv");
    assert_eq!(c.encryption_keys_data.location.path(), "events.2026-keys.csv");
    let names: Vec<String> = c.derived_data.iter().map(|d| d.target.location.path()).collect();
    assert_eq!(names, vec!["events.2026-derived-1-2.csv", "out/events.2026-derived-3.csv", "named.csv"]);
    assert!(c.derived_data.iter().all(|d| d.target.location.connector.is_none()));
}

#[test]
fn two_outputs_may_not_write_the_same_file() {
    // Same derived name twice, and the encrypted output on the source.
    let job = with(
        minimal(),
        "/derived_data",
        json!([
            { "consent_levels": [1, 2] },
            { "consent_levels": [2, 1, 1] }
        ]),
    );
    let job = with(serde_json::from_str(&job).unwrap(), "/encrypted_data/target/file_name", json!("./in.csv"));
    assert_eq!(
        problems(&job),
        vec![
            p("encrypted_data.target", "writes to `./in.csv`, the source file"),
            p("derived_data[1]", "writes to `in-derived-1-2.csv`, the same file as `derived_data[0]`"),
        ]
    );
    // Through a local connector whose root makes the paths meet.
    let job = with(minimal(), "/data_connectors", json!({ "out": { "local": { "root": "out/" } } }));
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/encryption_keys_data/target",
        json!({ "path_prefix": "out", "file_name": "k.csv" }),
    );
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/derived_data",
        json!([
            { "consent_levels": [1], "target": { "data_connector_ref": { "name": "out" }, "file_name": "k.csv" } }
        ]),
    );
    assert_eq!(
        problem(&job),
        p("derived_data[0].target", "writes to `k.csv`, the same file as `encryption_keys_data.target`")
    );
    // Same name in different buckets is fine.
    let job = with(
        minimal(),
        "/data_connectors",
        json!({
            "a": { "s3_bucket": { "bucket_name": "a" } }, "b": { "s3_bucket": { "bucket_name": "b" } }
        }),
    );
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/encrypted_data/target",
        json!({ "data_connector_ref": { "name": "a" }, "file_name": "x.csv" }),
    );
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/encryption_keys_data/target",
        json!({ "data_connector_ref": { "name": "b" }, "file_name": "x.csv" }),
    );
    parse_ok(&job);
}

#[test]
fn masked_fields() {
    let masked = |m: Value| with(minimal(), "/derived_data", json!([{ "consent_levels": [1], "masked_fields": m }]));
    let c = parse_ok(&masked(json!({ "seed": "env:S", "fields": ["a", "b", "a"] })));
    assert_eq!(
        c.derived_data[0].masked_fields,
        Some(MaskedFields {
            hash_type: HashType::HmacSha256,
            seed: SecretRef::Env("S".into()),
            fields: vec!["a".into(), "b".into()]
        })
    );
    assert_eq!(
        problem(&masked(
            json!({ "seed": "env:S", "field_patterns": { "other/contract/1": { "field_patterns": ["a"] } } })
        )),
        p(
            "derived_data[0].masked_fields.field_patterns[\"other/contract/1\"]",
            "`other/contract/1` is not this job's data contract (`acme/clicks/1.0.0`)"
        )
    );
    assert_eq!(problem(&masked(json!({ "fields": ["a"] }))), p("derived_data[0].masked_fields.seed", "required"));
    assert_eq!(
        problem(&masked(json!({ "seed": "env:S" }))),
        p("derived_data[0].masked_fields", "needs `field_patterns` (by contract ref) or `fields`")
    );
    assert_eq!(
        problem(&masked(json!({ "seed": "env:S", "fields": ["a"], "field_patterns": {} }))),
        p("derived_data[0].masked_fields.fields", "give either `field_patterns` or `fields`, not both")
    );
    assert_eq!(
        problem(&masked(json!({ "seed": "env:S", "hash_type": "sha1", "fields": ["a"] }))),
        p("derived_data[0].masked_fields.hash_type", "`sha1` is not one of `hmac-sha256`, `murmur3`")
    );
}

#[test]
fn consent_extractor() {
    let c = parse_ok(&with(
        minimal(),
        "/consent/consent_level_extractor",
        json!({
            "field": "c", "separator": ",", "plugin": "consent.wasm",
            "field_patterns": { "a": { "consent_levels": [2, 1, 2] }, "none": { "consent_levels": [] } }
        }),
    ));
    assert_eq!(
        c.consent.extractor,
        Some(ConsentExtractor {
            field: "c".into(),
            field_patterns: Some(vec![
                ("a".into(), ConsentLevels::new(vec![1, 2])),
                ("none".into(), ConsentLevels::empty())
            ]),
            separator: Some(",".into()),
            plugin: Some("consent.wasm".into()),
        })
    );
    assert_eq!(
        problems(&with(
            minimal(),
            "/consent/consent_level_extractor",
            json!({
                "separator": "|", "field_patterns": { "a": { "levels": [1] } }
            })
        )),
        vec![
            p("consent.consent_level_extractor.field", "required"),
            p("consent.consent_level_extractor.field_patterns.a.levels", "unknown key"),
            p("consent.consent_level_extractor.field_patterns.a.consent_levels", "required"),
        ]
    );
}

#[test]
fn target_csv_options() {
    let c = parse_ok(&with(
        minimal(),
        "/encryption_keys_data/target/data_type/csv",
        json!({ "quote": "NECESSARY", "line_end": "LF" }),
    ));
    assert_eq!((c.encryption_keys_data.quote, c.encryption_keys_data.line_end), (QuoteStyle::Necessary, LineEnd::Lf));
    assert_eq!(
        problem(&with(minimal(), "/encryption_keys_data/target/data_type/csv/line_end", json!("cr"))),
        p("encryption_keys_data.target.data_type.csv.line_end", "`cr` is not one of `crlf`, `lf`")
    );
}

// ------------------------------------------------------------------- secrets

#[test]
fn secret_values_never_appear_in_problems() {
    let secret = "hunter2-very-secret";
    let job = with(
        minimal(),
        "/derived_data",
        json!([
            { "consent_levels": [1], "masked_fields": { "seed": secret, "fields": "not-a-list" } },
            { "consent_levels": [1, 2], "masked_fields": { "seed": [secret], "fields": ["x"] } }
        ]),
    );
    let job = with(
        serde_json::from_str(&job).unwrap(),
        "/data_connectors",
        json!({
            "s3": { "s3_bucket": { "bucket_name": "", "secret_access_key": { "v": secret } } }
        }),
    );
    let err = parse(&job).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(secret), "{shown}");
    assert!(shown.contains("derived_data[1].masked_fields.seed"), "{shown}");
    assert!(shown.contains("data_connectors.s3.s3_bucket.secret_access_key"), "{shown}");
    // Nor in the Debug output of a valid config.
    let c = parse_ok(&with(
        minimal(),
        "/derived_data",
        json!([{ "consent_levels": [1], "masked_fields": { "seed": secret, "fields": ["x"] } }]),
    ));
    assert!(!format!("{c:?}").contains(secret));
}

#[test]
fn redacted_json_hides_inline_secrets_and_keeps_references() {
    let job = json!({
        "dataConnectors": {
            "seed": { "s3_bucket": { "bucket_name": "b", "accessKeyId": "AKIAINLINE", "secret_access_key": "env:AWS_SECRET" } },
            "az": { "azure_blob_storage_container": { "storage_account_uri": "u", "container_name": "c",
                    "client_secret_credential": { "tenant_id": "t", "client_id": "i", "client_secret": "azure-inline" } } }
        },
        "data_contract": { "ref": "a/b/1", "key_field": "k", "pii_fields": { "seed": 1 } },
        "encryption": { "kek": "file:/run/kek", "timestamp_config": { "field": "ts", "format": "iso8601" } },
        "derived_data": [
            { "consent_levels": [1], "masked_fields": { "seed": "inline-seed-value", "fields": ["seed"] } },
            { "consent_levels": [2], "masked_fields": { "seed": "env:X", "fields": ["x"] } }
        ]
    });
    let red = redacted_json(&job.to_string());
    for secret in ["AKIAINLINE", "azure-inline", "inline-seed-value"] {
        assert!(!red.contains(secret), "{secret} in {red}");
    }
    let red: Value = serde_json::from_str(&red).unwrap();
    assert_eq!(red["derived_data"][0]["masked_fields"]["seed"], "<redacted>");
    assert_eq!(red["derived_data"][1]["masked_fields"]["seed"], "env:X");
    assert_eq!(red["dataConnectors"]["seed"]["s3_bucket"]["accessKeyId"], "<redacted>");
    assert_eq!(red["dataConnectors"]["seed"]["s3_bucket"]["secret_access_key"], "env:AWS_SECRET");
    assert_eq!(red["encryption"]["kek"], "file:/run/kek");
    // User data named like a secret key is not touched.
    assert_eq!(red["data_contract"]["pii_fields"]["seed"], 1);
    assert_eq!(red["derived_data"][0]["masked_fields"]["fields"], json!(["seed"]));
    // Everything else is kept as written.
    assert_eq!(red["data_contract"], job["data_contract"]);

    // Text that is not JSON cannot be told apart: it is hidden whole.
    assert_eq!(redacted_json("{ \"seed\": \"abc\" "), "\"<redacted>\"");
}

#[test]
fn redacted_example_files_still_parse() {
    for name in ["spec_example.json", "spec_example_camel.json", "minimal.json", "skip_latin1_semicolon.json"] {
        let original = parse_ok(&vector(name));
        assert_eq!(parse_ok(&redacted_json(&vector(name))), original, "{name}");
    }
}

#[test]
fn separator_only_applies_with_field_patterns() {
    assert_eq!(
        problem(&with(minimal(), "/consent/consent_level_extractor", json!({ "field": "c", "separator": "|" }))),
        p("consent.consent_level_extractor.separator", "only applies with `field_patterns`")
    );
}

#[test]
fn null_means_absent_for_optional_keys() {
    let job = with(minimal(), "/encryption/window_hours", Value::Null);
    let job = with(serde_json::from_str(&job).unwrap(), "/data_connectors", Value::Null);
    let c = parse_ok(&job);
    assert_eq!(c.encryption.window_hours, 24);
    assert_eq!(
        problem(&with(minimal(), "/source_data/file_name", Value::Null)),
        p("source_data.file_name", "required")
    );
}

#[test]
fn wrong_types_are_named() {
    assert_eq!(
        problem(&with(minimal(), "/source_data", json!("in.csv"))),
        p("source_data", "must be an object, found a string")
    );
    assert_eq!(
        problem(&with(minimal(), "/derived_data", json!({}))),
        p("derived_data", "must be an array, found an object")
    );
    assert_eq!(
        problem(&with(minimal(), "/data_contract/key_field", json!(["a"]))),
        p("data_contract.key_field", "must be a string, found an array")
    );
}
