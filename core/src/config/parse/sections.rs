//! One function per section of the job file. Each reads what it can, records
//! every problem, and returns `None` only when the section cannot be built.
//! Checks that span sections (connector references, output names) are in the
//! parent module.
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde_json::Value;

use super::walk::{Obj, Problems, array, child, choice, closest, index, level, levels, text, whole_number};
use crate::config::model::*;
use crate::consent::ConsentLevels;
use crate::time::{TimestampFormat, parse_zone};

/// A `data_connector_ref.name` (recorded for checking by [`connector_ref`]).
#[derive(Debug, Clone)]
pub(crate) struct ConnectorRef {
    pub(crate) name: String,
}

/// A target before its file name is derived and its connector checked.
#[derive(Debug, Clone)]
pub(crate) struct RawTarget {
    /// Path of the `target` object (or of the section when it has none).
    pub(crate) path: String,
    pub(crate) connector: Option<ConnectorRef>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) file_name: Option<String>,
    pub(crate) quote: QuoteStyle,
    pub(crate) line_end: LineEnd,
}

impl RawTarget {
    fn absent(path: String) -> Self {
        RawTarget {
            path,
            connector: None,
            path_prefix: None,
            file_name: None,
            quote: QuoteStyle::Always,
            line_end: LineEnd::CrLf,
        }
    }
}

pub(crate) struct RawDerived {
    pub(crate) target: RawTarget,
    pub(crate) consent_levels: ConsentLevels,
    pub(crate) consent_level_type: ConsentLevelType,
    pub(crate) masked_fields: Option<MaskedFields>,
}

// ---------------------------------------------------------------- connectors

const CONNECTOR_KINDS: &[&str] = &["local", "s3_bucket", "google_cloud_storage_bucket", "azure_blob_storage_container"];

/// The connectors that could be read, and the names of all connectors given
/// (so that a broken connector does not also make every reference dangle).
pub(crate) fn connectors(p: &mut Problems, top: &Obj<'_>) -> (BTreeMap<String, ConnectorConfig>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut names = Vec::new();
    let Some((path, map)) = top.map(p, "data_connectors") else { return (out, names) };
    for (name, value) in map {
        names.push(name.clone());
        let cpath = child(&path, name);
        let Some(c) = Obj::open(p, &cpath, value, CONNECTOR_KINDS, top.camel) else { continue };
        let given: Vec<&str> = CONNECTOR_KINDS.iter().copied().filter(|k| c.has(k)).collect();
        if given.len() != 1 {
            let what = if given.is_empty() { "needs" } else { "has more than one kind; give" };
            p.add(&cpath, format!("{what} exactly one of `local`, `s3_bucket`, `google_cloud_storage_bucket`, `azure_blob_storage_container`"));
            continue;
        }
        if let Some(cfg) = connector(p, &c, given[0]) {
            out.insert(name.clone(), cfg);
        }
    }
    (out, names)
}

fn connector(p: &mut Problems, c: &Obj<'_>, kind: &'static str) -> Option<ConnectorConfig> {
    let before = p.len();
    let cfg = match kind {
        "local" => {
            let o = c.obj(p, kind, &["root"])?;
            ConnectorConfig::Local { root: o.required_string(p, "root").unwrap_or_default() }
        }
        "s3_bucket" => {
            let o = c.obj(
                p,
                kind,
                &[
                    "bucket_name",
                    "region",
                    "endpoint",
                    "access_key_id",
                    "secret_access_key",
                    "session_token",
                    "assume_role_arn",
                ],
            )?;
            ConnectorConfig::S3 {
                bucket_name: o.required_string(p, "bucket_name").unwrap_or_default(),
                region: o.string(p, "region"),
                endpoint: o.string(p, "endpoint"),
                access_key_id: o.secret(p, "access_key_id"),
                secret_access_key: o.secret(p, "secret_access_key"),
                session_token: o.secret(p, "session_token"),
                assume_role_arn: o.string(p, "assume_role_arn"),
            }
        }
        "google_cloud_storage_bucket" => {
            let o = c.obj(p, kind, &["bucket_name", "endpoint", "credentials_json"])?;
            ConnectorConfig::Gcs {
                bucket_name: o.required_string(p, "bucket_name").unwrap_or_default(),
                endpoint: o.string(p, "endpoint"),
                credentials_json: o.secret(p, "credentials_json"),
            }
        }
        _ => {
            let o = c.obj(
                p,
                kind,
                &["storage_account_uri", "container_name", "endpoint", "account_key", "client_secret_credential"],
            )?;
            let storage_account_uri = o.required_string(p, "storage_account_uri").unwrap_or_default();
            let container_name = o.required_string(p, "container_name").unwrap_or_default();
            let endpoint = o.string(p, "endpoint");
            let account_key = o.secret(p, "account_key");
            let (mut tenant_id, mut client_id, mut client_secret) = (None, None, None);
            if let Some(cs) = o.obj(p, "client_secret_credential", &["tenant_id", "client_id", "client_secret"]) {
                if o.has("account_key") {
                    p.add(&cs.path, "give either `account_key` or `client_secret_credential`, not both");
                }
                tenant_id = cs.required_string(p, "tenant_id");
                client_id = cs.required_string(p, "client_id");
                client_secret = cs.required_secret(p, "client_secret");
            }
            ConnectorConfig::Azure {
                storage_account_uri,
                container_name,
                endpoint,
                account_key,
                tenant_id,
                client_id,
                client_secret,
            }
        }
    };
    (p.len() == before).then_some(cfg)
}

// ------------------------------------------------------------------ contract

const CONTRACT_KEYS: &[&str] = &["ref", "event_contract_ref", "key_field", "pii_fields", "data_subject_field"];

/// A contract object, inline (`data_contract`) or from a file (`path` is then
/// `data_contract_file(<file>)`).
pub(crate) fn contract(p: &mut Problems, path: &str, value: &Value, camel: bool) -> Option<DataContract> {
    let before = p.len();
    let c = Obj::open(p, path, value, CONTRACT_KEYS, camel)?;
    let reference = contract_ref(p, &c);
    let key_field = c.required_string(p, "key_field");
    let mut pii_fields = Vec::new();
    if c.require(p, "pii_fields").is_some() {
        if let Some((ppath, map)) = c.map(p, "pii_fields") {
            for (column, v) in map {
                if let Some(l) = level(p, &child(&ppath, column), v) {
                    pii_fields.push((column.clone(), l));
                }
            }
        }
    }
    let data_subject_field = c.string(p, "data_subject_field");
    if p.len() != before {
        return None;
    }
    Some(DataContract { reference: reference?, key_field: key_field?, pii_fields, data_subject_field })
}

fn contract_ref(p: &mut Problems, c: &Obj<'_>) -> Option<String> {
    match (c.get("ref"), c.get("event_contract_ref")) {
        (Some(_), Some((alias_path, _))) => {
            p.add(&alias_path, format!("give either `{}` or `event_contract_ref`, not both", "ref"));
            None
        }
        (Some((rpath, v)), None) => {
            let r = text(p, &rpath, v)?;
            let parts: Vec<&str> = r.split('/').collect();
            if parts.len() == 3 && parts.iter().all(|s| !s.trim().is_empty()) {
                Some(r)
            } else {
                p.add(&rpath, "must be `handle/name/version` (three non-empty parts)");
                None
            }
        }
        (None, Some((apath, v))) => {
            let o = Obj::open(p, &apath, v, &["handle", "name", "version"], c.camel)?;
            let parts = [o.required_string(p, "handle"), o.required_string(p, "name"), o.required_string(p, "version")];
            for (part, key) in parts.iter().zip(["handle", "name", "version"]) {
                if part.as_deref().is_some_and(|s| s.contains('/')) {
                    p.add(&o.path_of(key), "must not contain `/`");
                }
            }
            match parts {
                [Some(h), Some(n), Some(v)] => Some(format!("{h}/{n}/{v}")),
                _ => None,
            }
        }
        (None, None) => {
            p.add(&c.path_of("ref"), "required (`handle/name/version`)");
            None
        }
    }
}

// -------------------------------------------------------------------- source

fn connector_ref(p: &mut Problems, o: &Obj<'_>) -> Option<ConnectorRef> {
    let r = o.obj(p, "data_connector_ref", &["name"])?;
    let name = r.required_string(p, "name")?;
    p.1.push((r.path_of("name"), name.clone()));
    Some(ConnectorRef { name })
}

fn source_csv_hint(key: &str) -> Option<&'static str> {
    matches!(key, "quote" | "line_end" | "lineEnd").then_some("`quote` and `line_end` are set on each output's target")
}

fn target_csv_hint(key: &str) -> Option<&'static str> {
    matches!(key, "delimiter" | "charset")
        .then_some("outputs are UTF-8 with the source's delimiter; set `charset` and `delimiter` on `source_data`")
}

pub(crate) struct RawSource {
    pub(crate) source: SourceConfig,
    pub(crate) path: String,
}

pub(crate) fn source(p: &mut Problems, top: &Obj<'_>) -> Option<RawSource> {
    let before = p.len();
    let s = top.required_obj(p, "source_data", &["data_connector_ref", "path_prefix", "file_name", "data_type"])?;
    let connector = connector_ref(p, &s);
    let path_prefix = s.string(p, "path_prefix");
    let file_name = s.required_string(p, "file_name");
    let (mut charset, mut delimiter) = (Charset::Utf8, b',');
    if let Some(dt) = s.obj(p, "data_type", &["csv"]) {
        if let Some((cpath, v)) = dt.get("csv") {
            if let Some(csv) = Obj::open_with_hint(p, &cpath, v, &["charset", "delimiter"], dt.camel, &source_csv_hint)
            {
                if let Some((path, v)) = csv.get("charset") {
                    charset = choice(
                        p,
                        &path,
                        v,
                        &[
                            ("UTF-8", Charset::Utf8),
                            ("utf8", Charset::Utf8),
                            ("ISO-8859-1", Charset::Iso8859_1),
                            ("latin1", Charset::Iso8859_1),
                        ],
                    )
                    .unwrap_or(charset);
                }
                if let Some((path, v)) = csv.get("delimiter") {
                    let d = match v.as_str() {
                        Some(",") => Some(b','),
                        Some(";") => Some(b';'),
                        Some("|") => Some(b'|'),
                        Some(t) if t == "\t" || t.eq_ignore_ascii_case("tab") => Some(b'\t'),
                        _ => None,
                    };
                    match d {
                        Some(d) => delimiter = d,
                        None => p.add(&path, "must be one of `,` `;` `|` or a tab (`\\t` or `tab`)"),
                    }
                }
            }
        }
    }
    if p.len() != before {
        return None;
    }
    let location =
        Location { connector: connector.as_ref().map(|c| c.name.clone()), path_prefix, file_name: file_name? };
    Some(RawSource { source: SourceConfig { location, charset, delimiter }, path: s.path })
}

// ------------------------------------------------------------------- targets

/// `encrypted_data` / `encryption_keys_data`: `{ "target": {...} }`, optional.
pub(crate) fn output(p: &mut Problems, top: &Obj<'_>, key: &'static str) -> Option<RawTarget> {
    let Some(o) = top.obj(p, key, &["target"]) else {
        return if top.has(key) { None } else { Some(RawTarget::absent(top.path_of(key))) };
    };
    target(p, &o)
}

fn target(p: &mut Problems, parent: &Obj<'_>) -> Option<RawTarget> {
    let before = p.len();
    let Some(t) = parent.obj(p, "target", &["data_connector_ref", "path_prefix", "file_name", "data_type"]) else {
        return if parent.has("target") { None } else { Some(RawTarget::absent(parent.path.clone())) };
    };
    let mut out = RawTarget::absent(t.path.clone());
    out.connector = connector_ref(p, &t);
    out.path_prefix = t.string(p, "path_prefix");
    out.file_name = t.string(p, "file_name");
    if let Some(dt) = t.obj(p, "data_type", &["csv"]) {
        if let Some((cpath, v)) = dt.get("csv") {
            if let Some(csv) = Obj::open_with_hint(p, &cpath, v, &["quote", "line_end"], dt.camel, &target_csv_hint) {
                if let Some((path, v)) = csv.get("quote") {
                    out.quote =
                        choice(p, &path, v, &[("always", QuoteStyle::Always), ("necessary", QuoteStyle::Necessary)])
                            .unwrap_or(out.quote);
                }
                if let Some((path, v)) = csv.get("line_end") {
                    out.line_end =
                        choice(p, &path, v, &[("crlf", LineEnd::CrLf), ("lf", LineEnd::Lf)]).unwrap_or(out.line_end);
                }
            }
        }
    }
    (p.len() == before).then_some(out)
}

// ------------------------------------------------------------------- consent

pub(crate) fn consent(p: &mut Problems, top: &Obj<'_>) -> Option<ConsentConfig> {
    let before = p.len();
    let mut cfg = ConsentConfig { default_levels: ConsentLevels::empty(), extractor: None };
    let Some(c) = top.obj(p, "consent", &["default_consent_levels", "consent_level_extractor"]) else {
        return (p.len() == before).then_some(cfg);
    };
    if let Some((path, v)) = c.get("default_consent_levels") {
        cfg.default_levels = ConsentLevels::new(levels(p, &path, v).unwrap_or_default());
    }
    if let Some(e) = c.obj(p, "consent_level_extractor", &["field", "field_patterns", "separator", "plugin"]) {
        let field = e.required_string(p, "field");
        let mut patterns = None;
        if let Some((ppath, map)) = e.map(p, "field_patterns") {
            let mut v = Vec::new();
            for (value, entry) in map {
                let Some(o) = Obj::open(p, &child(&ppath, value), entry, &["consent_levels"], e.camel) else {
                    continue;
                };
                if let Some((lpath, lv)) = o.require(p, "consent_levels") {
                    if let Some(l) = levels(p, &lpath, lv) {
                        v.push((value.clone(), ConsentLevels::new(l)));
                    }
                }
            }
            patterns = Some(v);
        }
        let separator = e.string(p, "separator");
        if separator.is_some() && patterns.is_none() && e.get("field_patterns").is_none() {
            p.add(&e.path_of("separator"), "only applies with `field_patterns`");
        }
        let plugin = e.string(p, "plugin");
        if let Some(field) = field {
            cfg.extractor = Some(ConsentExtractor { field, field_patterns: patterns, separator, plugin });
        }
    }
    (p.len() == before).then_some(cfg)
}

// ---------------------------------------------------------------- encryption

const ENCRYPTION_KEYS: &[&str] = &[
    "batch_job_group_id",
    "cipher",
    "associated_data",
    "timestamp_config",
    "window_hours",
    "retention_days",
    "policy_id",
    "kek",
];

pub(crate) fn encryption(p: &mut Problems, top: &Obj<'_>) -> Option<EncryptionConfig> {
    let before = p.len();
    let e = top.required_obj(p, "encryption", ENCRYPTION_KEYS)?;
    let batch_job_group_id = e.string(p, "batch_job_group_id");
    let cipher = match e.get("cipher") {
        Some((path, v)) => {
            choice(p, &path, v, &[("aes-256-gcm", CipherKind::Aes256Gcm), ("aes-256-siv", CipherKind::Aes256Siv)])
        }
        None => Some(CipherKind::Aes256Gcm),
    };
    let associated_data = match e.get("associated_data") {
        Some((path, v)) => choice(
            p,
            &path,
            v,
            &[
                ("none", AssociatedData::None),
                ("field-name", AssociatedData::FieldName),
                ("field_name", AssociatedData::FieldName),
            ],
        ),
        None => match cipher {
            Some(CipherKind::Aes256Siv) => Some(AssociatedData::None),
            _ => Some(AssociatedData::FieldName),
        },
    };
    let timestamp = timestamp(p, &e);
    let window_hours = match e.get("window_hours") {
        Some((path, v)) => whole_number(p, &path, v, 1, 8760, "hours"),
        None => Some(24),
    };
    let retention_days = match e.get("retention_days") {
        Some((path, v)) => whole_number(p, &path, v, 1, 36_500, "days"),
        None => Some(2556),
    };
    let policy_id = e.string(p, "policy_id");
    let kek = e.secret(p, "kek");
    if p.len() != before {
        return None;
    }
    Some(EncryptionConfig {
        batch_job_group_id,
        cipher: cipher?,
        associated_data: associated_data?,
        timestamp: timestamp?,
        window_hours: window_hours?,
        retention_days: retention_days?,
        policy_id,
        kek,
    })
}

fn timestamp(p: &mut Problems, e: &Obj<'_>) -> Option<TimestampConfig> {
    let t = e.required_obj(p, "timestamp_config", &["field", "format", "default_time_zone"])?;
    let field = t.required_string(p, "field");
    let format_text = t.required_string(p, "format");
    let format = format_text.as_deref().and_then(|f| match compile_format(f) {
        Ok(f) => Some(f),
        Err(message) => {
            p.add(&t.path_of("format"), message);
            None
        }
    });
    let mut zone = Some(chrono_tz::UTC);
    if let Some(z) = t.obj(p, "default_time_zone", &["id"]) {
        zone = z.required_string(p, "id").and_then(|id| {
            let tz = parse_zone(&id);
            if tz.is_none() {
                let names = chrono_tz::TZ_VARIANTS.iter().map(|z| z.name());
                let message = match closest(&id, names) {
                    Some(s) => format!("`{id}` is not an IANA time zone; did you mean `{s}`?"),
                    None => format!("`{id}` is not an IANA time zone (like `UTC` or `Europe/Amsterdam`)"),
                };
                p.add(&z.path_of("id"), message);
            }
            tz
        });
    }
    Some(TimestampConfig { field: field?, format: format?, format_text: format_text?, zone: zone? })
}

/// The three keywords are recognised here, so that a job using them never
/// depends on the pattern compiler; anything else is a pattern.
fn compile_format(spec: &str) -> Result<TimestampFormat, String> {
    match spec {
        "iso8601" => Ok(TimestampFormat::Iso8601),
        "epoch_millis" => Ok(TimestampFormat::EpochMillis),
        "epoch_seconds" => Ok(TimestampFormat::EpochSeconds),
        pattern => TimestampFormat::parse(pattern),
    }
}

// ------------------------------------------------------------------- derived

pub(crate) fn derived(p: &mut Problems, top: &Obj<'_>, contract_ref: Option<&str>) -> Vec<RawDerived> {
    let mut out = Vec::new();
    let Some((path, items)) = top.array(p, "derived_data") else { return out };
    for (i, item) in items.iter().enumerate() {
        let before = p.len();
        let ipath = index(&path, i);
        let Some(d) =
            Obj::open(p, &ipath, item, &["target", "consent_levels", "consent_level_type", "masked_fields"], top.camel)
        else {
            continue;
        };
        let target = target(p, &d);
        let consent_levels = d.require(p, "consent_levels").and_then(|(lpath, v)| {
            let l = levels(p, &lpath, v)?;
            if l.is_empty() {
                p.add(&lpath, "must list at least one level");
                return None;
            }
            Some((lpath, ConsentLevels::new(l)))
        });
        let consent_level_type = match d.get("consent_level_type") {
            Some((tpath, v)) => choice(
                p,
                &tpath,
                v,
                &[("GRANULAR", ConsentLevelType::Granular), ("CUMULATIVE", ConsentLevelType::Cumulative)],
            ),
            None => Some(ConsentLevelType::Granular),
        };
        if let (Some(ConsentLevelType::Cumulative), Some((lpath, l))) = (consent_level_type, &consent_levels) {
            if l.as_slice().len() != 1 {
                p.add(lpath, "CUMULATIVE needs exactly one level");
            }
        }
        let masked_fields = d
            .obj(p, "masked_fields", &["hash_type", "seed", "field_patterns", "fields"])
            .and_then(|m| masked(p, &m, contract_ref));
        if p.len() != before {
            continue;
        }
        if let (Some(target), Some((_, consent_levels)), Some(consent_level_type)) =
            (target, consent_levels, consent_level_type)
        {
            out.push(RawDerived { target, consent_levels, consent_level_type, masked_fields });
        }
    }
    out
}

fn masked(p: &mut Problems, m: &Obj<'_>, contract_ref: Option<&str>) -> Option<MaskedFields> {
    let before = p.len();
    let hash_type = match m.get("hash_type") {
        Some((path, v)) => {
            choice(p, &path, v, &[("hmac-sha256", HashType::HmacSha256), ("murmur3", HashType::Murmur3)])
        }
        None => Some(HashType::HmacSha256),
    };
    let seed = m.required_secret(p, "seed");
    let mut fields: Vec<String> = Vec::new();
    match (m.get("field_patterns"), m.get("fields")) {
        (Some(_), Some((fpath, _))) => p.add(&fpath, "give either `field_patterns` or `fields`, not both"),
        (None, None) => p.add(&m.path, "needs `field_patterns` (by contract ref) or `fields`"),
        (None, Some((fpath, v))) => fields = columns(p, &fpath, v),
        (Some(_), None) => {
            if let Some((ppath, map)) = m.map(p, "field_patterns") {
                for (reference, entry) in map {
                    let epath = child(&ppath, reference);
                    let Some(o) = Obj::open(p, &epath, entry, &["field_patterns"], m.camel) else { continue };
                    let cols = o.require(p, "field_patterns").map(|(cpath, v)| columns(p, &cpath, v));
                    match contract_ref {
                        Some(r) if r != reference => {
                            p.add(&epath, format!("`{reference}` is not this job's data contract (`{r}`)"));
                        }
                        _ => fields.extend(cols.unwrap_or_default()),
                    }
                }
            }
        }
    }
    let mut seen = Vec::new();
    fields.retain(|f| {
        let new = !seen.contains(f);
        if new {
            seen.push(f.clone());
        }
        new
    });
    if p.len() != before {
        return None;
    }
    Some(MaskedFields { hash_type: hash_type?, seed: seed?, fields })
}

/// An array of column names.
fn columns(p: &mut Problems, path: &str, v: &Value) -> Vec<String> {
    let Some((path, items)) = array(p, path, v) else { return Vec::new() };
    items.iter().enumerate().filter_map(|(i, v)| text(p, &index(&path, i), v)).collect()
}
