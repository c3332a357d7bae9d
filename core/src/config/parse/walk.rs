//! A hand-written walk over `serde_json::Value` that collects every problem.
//!
//! Design note: serde derive with `deny_unknown_fields` stops at the first
//! error and cannot accept two spellings of a key while reporting paths in the
//! spelling the user wrote. So each object of the job file is opened with the
//! list of keys it may hold (in snake_case); [`Obj`] matches the user's keys
//! against both spellings, reports unknown and doubled keys at once, and hands
//! out values together with their JSON path. Typed getters never fail: they
//! record a [`ConfigProblem`] and return `None`, so the walk always goes on.
//!
//! # Security
//! Messages name paths and keys, never a value that may be a secret: getters
//! for secrets ([`Obj::secret`]) say only what kind of value was expected.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::{Map, Value};

use crate::config::model::SecretRef;
use crate::error::ConfigProblem;

/// Collects problems during one walk, and the connector references seen
/// (path of the `name`, the name): they are checked after the walk, even in
/// sections that have other problems.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigProblem>, pub(crate) Vec<(String, String)>);

impl Problems {
    pub(crate) fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem { path: path.into(), message: message.into() });
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// `data_connectors.lake`, or `field_patterns["acme/clicks/1.0.0"]` when the
/// key is not a plain name.
pub(crate) fn child(parent: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (parent, plain) {
        ("$" | "", true) => key.to_string(),
        ("$" | "", false) => format!("[{}]", quoted(key)),
        (p, true) => format!("{p}.{key}"),
        (p, false) => format!("{p}[{}]", quoted(key)),
    }
}

pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"?\""))
}

/// `default_time_zone` → `defaultTimeZone`.
pub(crate) fn camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Levenshtein distance, for "did you mean" hints on short key names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = alloc::vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        core::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest of `candidates` within edit distance 2, if any.
pub(crate) fn closest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One JSON object of the job file, opened with the keys it may hold.
pub(crate) struct Obj<'a> {
    pub(crate) path: String,
    /// Whether the user writes lowerCamelCase here (used to spell missing keys).
    pub(crate) camel: bool,
    /// Known key (snake_case) → (the user's spelling, value).
    found: Vec<(&'static str, Option<(&'a str, &'a Value)>)>,
}

impl<'a> Obj<'a> {
    /// Opens `value` at `path` as an object with the `known` keys (snake_case;
    /// lowerCamelCase is accepted too). Reports unknown and doubled keys.
    /// `hint` may explain an unknown key better than a spelling suggestion.
    pub(crate) fn open(
        p: &mut Problems,
        path: &str,
        value: &'a Value,
        known: &[&'static str],
        parent_camel: bool,
    ) -> Option<Obj<'a>> {
        Self::open_with_hint(p, path, value, known, parent_camel, &|_| None)
    }

    pub(crate) fn open_with_hint(
        p: &mut Problems,
        path: &str,
        value: &'a Value,
        known: &[&'static str],
        parent_camel: bool,
        hint: &dyn Fn(&str) -> Option<&'static str>,
    ) -> Option<Obj<'a>> {
        let Value::Object(map) = value else {
            p.add(path, format!("must be an object, found {}", type_name(value)));
            return None;
        };
        Some(Self::from_map(p, path, map, known, parent_camel, hint))
    }

    fn from_map(
        p: &mut Problems,
        path: &str,
        map: &'a Map<String, Value>,
        known: &[&'static str],
        parent_camel: bool,
        hint: &dyn Fn(&str) -> Option<&'static str>,
    ) -> Obj<'a> {
        let mut found: Vec<(&'static str, Option<(&'a str, &'a Value)>)> = known.iter().map(|k| (*k, None)).collect();
        let mut saw_snake = false;
        let mut saw_camel = false;
        for (key, value) in map {
            let slot = found.iter_mut().find(|(k, _)| *k == key.as_str() || camel(k) == *key);
            match slot {
                Some((known_key, slot)) => {
                    if key.as_str() != *known_key {
                        saw_camel = true;
                    } else if known_key.contains('_') {
                        saw_snake = true;
                    }
                    if let Some((first, _)) = slot {
                        p.add(&child(path, key), format!("given twice, as `{first}` and `{key}`"));
                    } else {
                        *slot = Some((key.as_str(), value));
                    }
                }
                None => {
                    let message = if let Some(h) = hint(key) {
                        format!("unknown key ({h})")
                    } else {
                        let spellings: Vec<String> = known.iter().flat_map(|k| [String::from(*k), camel(k)]).collect();
                        match closest(key, spellings.iter().map(String::as_str)) {
                            Some(s) => format!("unknown key; did you mean `{s}`?"),
                            None => String::from("unknown key"),
                        }
                    };
                    p.add(&child(path, key), message);
                }
            }
        }
        let camel = if saw_camel != saw_snake { saw_camel } else { parent_camel };
        Obj { path: path.into(), camel, found }
    }

    /// The path of `key` as the user wrote it (or in their style if absent).
    pub(crate) fn path_of(&self, key: &'static str) -> String {
        match self.found.iter().find(|(k, _)| *k == key) {
            Some((_, Some((spelled, _)))) => child(&self.path, spelled),
            _ if self.camel => child(&self.path, &camel(key)),
            _ => child(&self.path, key),
        }
    }

    /// The value of `key`; `null` counts as absent.
    pub(crate) fn get(&self, key: &'static str) -> Option<(String, &'a Value)> {
        let (_, slot) = self.found.iter().find(|(k, _)| *k == key)?;
        match slot {
            Some((_, Value::Null)) | None => None,
            Some((spelled, v)) => Some((child(&self.path, spelled), *v)),
        }
    }

    pub(crate) fn has(&self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    /// Reports `key` as required when it is absent.
    pub(crate) fn require(&self, p: &mut Problems, key: &'static str) -> Option<(String, &'a Value)> {
        let got = self.get(key);
        if got.is_none() {
            p.add(&self.path_of(key), "required");
        }
        got
    }

    pub(crate) fn obj(&self, p: &mut Problems, key: &'static str, known: &[&'static str]) -> Option<Obj<'a>> {
        let (path, v) = self.get(key)?;
        Obj::open(p, &path, v, known, self.camel)
    }

    pub(crate) fn required_obj(&self, p: &mut Problems, key: &'static str, known: &[&'static str]) -> Option<Obj<'a>> {
        let (path, v) = self.require(p, key)?;
        Obj::open(p, &path, v, known, self.camel)
    }

    /// An optional non-empty string.
    pub(crate) fn string(&self, p: &mut Problems, key: &'static str) -> Option<String> {
        let (path, v) = self.get(key)?;
        text(p, &path, v)
    }

    /// A required non-empty string.
    pub(crate) fn required_string(&self, p: &mut Problems, key: &'static str) -> Option<String> {
        let (path, v) = self.require(p, key)?;
        text(p, &path, v)
    }

    /// An optional secret: `env:NAME`, `file:PATH` or an inline value. The
    /// value itself never appears in a message.
    pub(crate) fn secret(&self, p: &mut Problems, key: &'static str) -> Option<SecretRef> {
        let (path, v) = self.get(key)?;
        secret(p, &path, v)
    }

    pub(crate) fn required_secret(&self, p: &mut Problems, key: &'static str) -> Option<SecretRef> {
        let (path, v) = self.require(p, key)?;
        secret(p, &path, v)
    }

    /// An optional object whose keys are user data (column names, connector
    /// names, contract refs), in job-file order.
    pub(crate) fn map(&self, p: &mut Problems, key: &'static str) -> Option<(String, &'a Map<String, Value>)> {
        let (path, v) = self.get(key)?;
        match v {
            Value::Object(m) => Some((path, m)),
            other => {
                p.add(&path, format!("must be an object, found {}", type_name(other)));
                None
            }
        }
    }

    pub(crate) fn array(&self, p: &mut Problems, key: &'static str) -> Option<(String, &'a Vec<Value>)> {
        let (path, v) = self.get(key)?;
        array(p, &path, v)
    }
}

pub(crate) fn array<'a>(p: &mut Problems, path: &str, v: &'a Value) -> Option<(String, &'a Vec<Value>)> {
    match v {
        Value::Array(a) => Some((path.into(), a)),
        other => {
            p.add(path, format!("must be an array, found {}", type_name(other)));
            None
        }
    }
}

/// A non-empty string.
pub(crate) fn text(p: &mut Problems, path: &str, v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.is_empty() => {
            p.add(path, "must not be empty");
            None
        }
        Value::String(s) => Some(s.clone()),
        other => {
            p.add(path, format!("must be a string, found {}", type_name(other)));
            None
        }
    }
}

fn secret(p: &mut Problems, path: &str, v: &Value) -> Option<SecretRef> {
    let Value::String(s) = v else {
        p.add(path, format!("must be a string (`env:NAME`, `file:PATH` or the value), found {}", type_name(v)));
        return None;
    };
    match SecretRef::parse(s) {
        SecretRef::Env(n) if n.is_empty() => {
            p.add(path, "`env:` must name an environment variable");
            None
        }
        SecretRef::File(f) if f.is_empty() => {
            p.add(path, "`file:` must name a file");
            None
        }
        SecretRef::Inline(i) if i.is_empty() => {
            p.add(path, "must not be empty");
            None
        }
        r => Some(r),
    }
}

/// A non-negative integer that fits a u32 (a purpose level, a column level).
pub(crate) fn level(p: &mut Problems, path: &str, v: &Value) -> Option<u32> {
    match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
        Some(n) => Some(n),
        None => {
            p.add(path, "must be a non-negative integer (at most 4294967295)");
            None
        }
    }
}

/// An array of levels.
pub(crate) fn levels(p: &mut Problems, path: &str, v: &Value) -> Option<Vec<u32>> {
    let (path, items) = array(p, path, v)?;
    let before = p.len();
    let out: Vec<u32> = items.iter().enumerate().filter_map(|(i, v)| level(p, &index(&path, i), v)).collect();
    (p.len() == before).then_some(out)
}

/// A whole number in `min..=max` (`24` or `24.0`; not `1.5`).
pub(crate) fn whole_number(p: &mut Problems, path: &str, v: &Value, min: u32, max: u32, what: &str) -> Option<u32> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            // `24.0` is whole; `f64::fract` needs std, so round-trip instead.
            n.as_f64().filter(|f| *f >= 0.0 && *f <= u32::MAX as f64 && (*f as u64) as f64 == *f).map(|f| f as u64)
        }),
        _ => None,
    };
    match n.and_then(|n| u32::try_from(n).ok()).filter(|n| (min..=max).contains(n)) {
        Some(n) => Some(n),
        None => {
            p.add(path, format!("must be a whole number of {what} from {min} to {max}"));
            None
        }
    }
}

/// One of a fixed set of words (compared case-insensitively); reports the
/// accepted words otherwise.
pub(crate) fn choice<T: Copy>(p: &mut Problems, path: &str, v: &Value, options: &[(&str, T)]) -> Option<T> {
    let listed = || options.iter().map(|(w, _)| format!("`{w}`")).collect::<Vec<_>>().join(", ");
    let Value::String(s) = v else {
        p.add(path, format!("must be one of {}, found {}", listed(), type_name(v)));
        return None;
    };
    match options.iter().find(|(w, _)| w.eq_ignore_ascii_case(s.trim())) {
        Some((_, t)) => Some(*t),
        None => {
            p.add(path, format!("`{s}` is not one of {}", listed()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_spelling() {
        assert_eq!(camel("default_time_zone"), "defaultTimeZone");
        assert_eq!(camel("s3_bucket"), "s3Bucket");
        assert_eq!(camel("ref"), "ref");
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("key_feild", "key_field"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("keyfield", ["key_field", "pii_fields"]), Some("key_field"));
        assert_eq!(closest("zzz", ["key_field"]), None);
    }

    #[test]
    fn paths() {
        assert_eq!(child("$", "a"), "a");
        assert_eq!(child("a", "b_c"), "a.b_c");
        assert_eq!(child("x", "acme/c/1.0.0"), "x[\"acme/c/1.0.0\"]");
        assert_eq!(index("d", 2), "d[2]");
    }
}
