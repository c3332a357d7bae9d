//! Redacting inline secrets from a job file before it is stored.
//!
//! Redaction goes by key name, at any depth, rather than by the structure the
//! parser expects: a secret written in the wrong place (or in a file that
//! does not validate) is still hidden. Objects whose keys are user data
//! (`data_connectors`, `pii_fields`, `field_patterns`) are not matched by key
//! name, only descended into, so a column called `seed` is left alone.
use alloc::string::{String, ToString};

use serde_json::Value;

use super::walk::camel;

/// Keys whose value is a secret (snake_case; lowerCamelCase matches too).
const SECRET_KEYS: &[&str] = &[
    "seed",
    "kek",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "credentials_json",
    "account_key",
    "client_secret",
];

/// Keys whose value is an object keyed by user data.
const USER_KEYED: &[&str] = &["data_connectors", "pii_fields", "field_patterns"];

pub(crate) const REDACTED: &str = "<redacted>";

fn is_one_of(key: &str, list: &[&str]) -> bool {
    list.iter().any(|k| *k == key || camel(k) == key)
}

pub(crate) fn redacted_json(json: &str) -> String {
    let Ok(mut root) = serde_json::from_str::<Value>(json) else {
        return serde_json::to_string(REDACTED).unwrap_or_default();
    };
    redact(&mut root, false);
    serde_json::to_string_pretty(&root).unwrap_or_else(|_| REDACTED.to_string())
}

/// `user_keyed`: the keys of this object are user data, not field names.
fn redact(v: &mut Value, user_keyed: bool) {
    match v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if !user_keyed && is_one_of(key, SECRET_KEYS) {
                    if !is_reference(value) {
                        *value = Value::String(REDACTED.into());
                    }
                } else {
                    redact(value, !user_keyed && is_one_of(key, USER_KEYED));
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, false)),
        _ => {}
    }
}

/// `env:NAME` / `file:PATH` name where a secret is, not the secret; `null`
/// holds nothing.
fn is_reference(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.starts_with("env:") || s.starts_with("file:"),
        _ => false,
    }
}
