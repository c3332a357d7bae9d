//! Parsing and validating a job file.
//!
//! The job file is read into a `serde_json::Value` and walked by hand
//! ([`walk`]), one function per section ([`sections`]), so that every problem
//! is found in one pass and reported with its JSON path, in the spelling
//! (snake_case or lowerCamelCase) the user wrote. Checks that span sections
//! (connector references, derived file names, two outputs writing the same
//! file) run here, after the walk. A `JobConfig` is built only when no
//! problem was found.
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde_json::Value;

use super::model::*;
use crate::error::{ConfigProblem, Error, ErrorKind, Result};

mod redact;
mod sections;
mod walk;

use sections::RawTarget;
use walk::{Obj, Problems, closest};

const TOP_KEYS: &[&str] = &[
    "data_connectors",
    "data_contract",
    "data_contract_file",
    "source_data",
    "consent",
    "encryption",
    "encrypted_data",
    "encryption_keys_data",
    "derived_data",
    "error_policy",
];

impl JobConfig {
    /// Parses and validates a JSON job file. `load_contract` reads the file
    /// named by `data_contract_file` (the core does no I/O itself).
    ///
    /// # Errors
    /// `InvalidConfig` with every problem found, each with its JSON path.
    pub fn from_json(json: &str, load_contract: &mut dyn FnMut(&str) -> Result<String, String>) -> Result<JobConfig> {
        let root: Value = serde_json::from_str(json).map_err(|e| invalid(vec![json_problem("$", &e)]))?;
        let mut p = Problems::default();
        let Some(top) = Obj::open(&mut p, "$", &root, TOP_KEYS, false) else {
            return Err(invalid(p.0));
        };

        let (connectors, connector_names) = sections::connectors(&mut p, &top);
        let contract = contract(&mut p, &top, load_contract);
        let source = sections::source(&mut p, &top);
        let consent = sections::consent(&mut p, &top);
        let encryption = sections::encryption(&mut p, &top);
        let encrypted = sections::output(&mut p, &top, "encrypted_data");
        let keys = sections::output(&mut p, &top, "encryption_keys_data");
        let derived = sections::derived(&mut p, &top, contract.as_ref().map(|c| c.reference.as_str()));
        let error_policy = match top.get("error_policy") {
            Some((path, v)) => {
                walk::choice(&mut p, &path, v, &[("fail", ErrorPolicy::Fail), ("skip", ErrorPolicy::Skip)])
            }
            None => Some(ErrorPolicy::Fail),
        };

        // Connector references, wherever they were written.
        for (path, name) in core::mem::take(&mut p.1) {
            check_connector_ref(&mut p, &path, &name, &connector_names);
        }

        let (
            Some(contract),
            Some(source),
            Some(consent),
            Some(encryption),
            Some(encrypted),
            Some(keys),
            Some(error_policy),
        ) = (contract, source, consent, encryption, encrypted, keys, error_policy)
        else {
            return Err(invalid(p.0));
        };

        // Output names: derived from the source when missing, then no two
        // outputs (nor an output and the source) may be the same file.
        let stem = file_stem(&source.source.location.file_name);
        let encrypted_data = finish_target(encrypted, format!("{stem}-encrypted.csv"));
        let encryption_keys_data = finish_target(keys, format!("{stem}-keys.csv"));
        let mut derived_data = Vec::with_capacity(derived.len());
        for d in derived {
            let levels: Vec<String> = d.consent_levels.as_slice().iter().map(|l| format!("{l}")).collect();
            derived_data.push((
                d.target.path.clone(),
                DerivedConfig {
                    target: finish_target(d.target, format!("{stem}-derived-{}.csv", levels.join("-"))).1,
                    consent_levels: d.consent_levels,
                    consent_level_type: d.consent_level_type,
                    masked_fields: d.masked_fields,
                },
            ));
        }
        let mut seen: Vec<(String, (String, String))> =
            vec![(source.path.clone(), resolved(&source.source.location, &connectors))];
        let outputs = [(&encrypted_data.0, &encrypted_data.1), (&encryption_keys_data.0, &encryption_keys_data.1)]
            .into_iter()
            .chain(derived_data.iter().map(|(path, d)| (path, &d.target)));
        for (path, target) in outputs {
            let here = resolved(&target.location, &connectors);
            match seen.iter().find(|(_, there)| *there == here) {
                Some((other, _)) if *other == source.path => {
                    p.add(path, format!("writes to `{}`, the source file", target.location.path()));
                }
                Some((other, _)) => {
                    p.add(path, format!("writes to `{}`, the same file as `{other}`", target.location.path()));
                }
                None => seen.push((path.clone(), here)),
            }
        }

        if p.len() != 0 {
            return Err(invalid(p.0));
        }
        Ok(JobConfig {
            data_connectors: connectors,
            data_contract: contract,
            source: source.source,
            consent,
            encryption,
            encrypted_data: encrypted_data.1,
            encryption_keys_data: encryption_keys_data.1,
            derived_data: derived_data.into_iter().map(|(_, d)| d).collect(),
            error_policy,
        })
    }
}

/// The job file with every inline secret replaced by `<redacted>`, for the
/// job store. `env:` and `file:` references are kept: they are not secrets.
/// The result is re-serialised (pretty-printed, key order kept). A file that
/// is not JSON is replaced as a whole by `"<redacted>"` (its secrets cannot
/// be told apart).
pub fn redacted_json(json: &str) -> String {
    redact::redacted_json(json)
}

fn invalid(problems: Vec<ConfigProblem>) -> Error {
    Error::new(ErrorKind::InvalidConfig(problems))
}

/// A JSON syntax error, by position. serde_json's messages for syntax errors
/// are fixed texts (`expected value`, `trailing comma`, ...), never the
/// document's content.
fn json_problem(path: &str, e: &serde_json::Error) -> ConfigProblem {
    let what = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of file",
        _ => "syntax error",
    };
    let detail = format!("{e}");
    let detail = detail.split(" at line ").next().unwrap_or(what);
    ConfigProblem {
        path: path.into(),
        message: format!("invalid JSON ({detail}) at line {} column {}", e.line(), e.column()),
    }
}

/// `data_contract` or `data_contract_file`, exactly one.
fn contract(
    p: &mut Problems,
    top: &Obj<'_>,
    load: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Option<super::DataContract> {
    match (top.get("data_contract"), top.get("data_contract_file")) {
        (Some((path, v)), Some((file_path, _))) => {
            let _ = sections::contract(p, &path, v, top.camel);
            p.add(&file_path, "give either `data_contract` or `data_contract_file`, not both");
            None
        }
        (Some((path, v)), None) => sections::contract(p, &path, v, top.camel),
        (None, Some((path, v))) => {
            let file = walk::text(p, &path, v)?;
            let text = match load(&file) {
                Ok(t) => t,
                Err(e) => {
                    p.add(&path, format!("cannot read `{file}`: {e}"));
                    return None;
                }
            };
            let inner = format!("{path}({file})");
            match serde_json::from_str::<Value>(&text) {
                Ok(v) => sections::contract(p, &inner, &v, top.camel),
                Err(e) => {
                    p.0.push(json_problem(&inner, &e));
                    None
                }
            }
        }
        (None, None) => {
            p.add(&top.path_of("data_contract"), "required (or `data_contract_file`)");
            None
        }
    }
}

fn check_connector_ref(p: &mut Problems, path: &str, name: &str, names: &[String]) {
    if names.iter().any(|n| n == name) {
        return;
    }
    let message = match closest(name, names.iter().map(String::as_str)) {
        Some(s) => format!("no data connector named `{name}` in `data_connectors`; did you mean `{s}`?"),
        None if names.is_empty() => format!("no data connector named `{name}`: `data_connectors` is empty"),
        None => format!("no data connector named `{name}` in `data_connectors`"),
    };
    p.add(path, message);
}

/// The source file name without its directory and its last extension:
/// `in/events.csv` → `events`, `events.2026.csv` → `events.2026`.
fn file_stem(file_name: &str) -> &str {
    let name = file_name.rsplit('/').next().unwrap_or(file_name);
    match name.rfind('.') {
        Some(0) | None => name,
        Some(i) => &name[..i],
    }
}

fn finish_target(t: RawTarget, derived_name: String) -> (String, TargetConfig) {
    let location = Location {
        connector: t.connector.map(|c| c.name),
        path_prefix: t.path_prefix,
        file_name: t.file_name.unwrap_or(derived_name),
    };
    (t.path, TargetConfig { location, quote: t.quote, line_end: t.line_end })
}

/// Where a location really is, so that two spellings of one file compare
/// equal: (store, normalised path). Local connectors are folded into the
/// local file system by their root.
fn resolved(l: &Location, connectors: &BTreeMap<String, ConnectorConfig>) -> (String, String) {
    let path = l.path();
    match l.connector.as_ref().map(|n| (n, connectors.get(n))) {
        None => (String::from("local"), normalised(&path)),
        Some((_, Some(ConnectorConfig::Local { root }))) => {
            (String::from("local"), normalised(&format!("{root}/{path}")))
        }
        Some((_, Some(ConnectorConfig::S3 { bucket_name, endpoint, .. }))) => {
            (format!("s3:{}:{bucket_name}", endpoint.as_deref().unwrap_or("")), normalised(&path))
        }
        Some((_, Some(ConnectorConfig::Gcs { bucket_name, endpoint, .. }))) => {
            (format!("gcs:{}:{bucket_name}", endpoint.as_deref().unwrap_or("")), normalised(&path))
        }
        Some((_, Some(ConnectorConfig::Azure { storage_account_uri, container_name, .. }))) => {
            (format!("azure:{}:{container_name}", storage_account_uri.trim_end_matches('/')), normalised(&path))
        }
        Some((name, None)) => (format!("connector:{name}"), normalised(&path)),
    }
}

/// `./a//b/` → `a/b`; a leading `/` is kept.
fn normalised(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let joined = parts.join("/");
    if path.starts_with('/') { format!("/{joined}") } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(file_stem("events.csv"), "events");
        assert_eq!(file_stem("in/events.2026.csv"), "events.2026");
        assert_eq!(file_stem("events"), "events");
        assert_eq!(file_stem(".hidden"), ".hidden");
    }

    #[test]
    fn normalising() {
        assert_eq!(normalised("./a//b/"), "a/b");
        assert_eq!(normalised("/a/./b"), "/a/b");
    }
}
