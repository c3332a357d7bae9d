//! Consent: which purposes a record's subject agreed to (SPEC section 5).
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use crate::config::{ConsentConfig, ConsentExtractor, ConsentLevelType};

/// A sorted, de-duplicated set of purpose levels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ConsentLevels(Vec<u32>);

impl ConsentLevels {
    pub fn new(mut levels: Vec<u32>) -> Self {
        levels.sort_unstable();
        levels.dedup();
        ConsentLevels(levels)
    }
    pub fn empty() -> Self {
        ConsentLevels(Vec::new())
    }
    pub fn as_slice(&self) -> &[u32] {
        &self.0
    }
    pub fn contains(&self, level: u32) -> bool {
        self.0.binary_search(&level).is_ok()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn highest(&self) -> Option<u32> {
        self.0.last().copied()
    }
    pub fn union(&self, other: &ConsentLevels) -> ConsentLevels {
        let mut v = self.0.clone();
        v.extend_from_slice(&other.0);
        ConsentLevels::new(v)
    }
    /// `[1,2]`, no spaces; `[]` when empty.
    pub fn to_text(&self) -> String {
        let mut s = String::from("[");
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{l}");
        }
        s.push(']');
        s
    }
    /// Parses `[1,2]` (spaces allowed, `[]` empty) or a bare `1`.
    pub fn parse(text: &str) -> Option<ConsentLevels> {
        let t = text.trim();
        if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            let inner = inner.trim();
            if inner.is_empty() {
                return Some(ConsentLevels::empty());
            }
            let mut v = Vec::new();
            for part in inner.split(',') {
                v.push(parse_level(part.trim())?);
            }
            Some(ConsentLevels::new(v))
        } else {
            Some(ConsentLevels::new(alloc::vec![parse_level(t)?]))
        }
    }
}

fn parse_level(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Computes a record's consent from the trimmed cell of the consent field.
/// Rules 2 to 5 of SPEC section 5; `default` when nothing applies.
pub fn levels_from_cell(extractor: &ConsentExtractor, cell: &str, default: &ConsentLevels) -> ConsentLevels {
    let value = cell.trim();
    match &extractor.field_patterns {
        Some(patterns) => {
            let lookup = |v: &str| patterns.iter().find(|(k, _)| k == v).map(|(_, l)| l);
            match &extractor.separator {
                Some(sep) if !sep.is_empty() => {
                    let mut acc: Option<ConsentLevels> = None;
                    for part in value.split(sep.as_str()) {
                        if let Some(l) = lookup(part.trim()) {
                            acc = Some(match acc {
                                Some(a) => a.union(l),
                                None => l.clone(),
                            });
                        }
                    }
                    acc.unwrap_or_else(|| default.clone())
                }
                _ => lookup(value).cloned().unwrap_or_else(|| default.clone()),
            }
        }
        None => ConsentLevels::parse(value).unwrap_or_else(|| default.clone()),
    }
}

/// A record's consent under `config`, given the consent cell (None when the
/// job has no extractor).
pub fn record_levels(config: &ConsentConfig, cell: Option<&str>) -> ConsentLevels {
    match (&config.extractor, cell) {
        (Some(ex), Some(cell)) => levels_from_cell(ex, cell, &config.default_levels),
        _ => config.default_levels.clone(),
    }
}

/// Whether a derived output keeps a record with consent `record`.
/// GRANULAR: every requested level is present. CUMULATIVE (one requested
/// level N): the record's highest level is at least N.
pub fn row_allowed(kind: ConsentLevelType, requested: &ConsentLevels, record: &ConsentLevels) -> bool {
    match kind {
        ConsentLevelType::Granular => requested.as_slice().iter().all(|l| record.contains(*l)),
        ConsentLevelType::Cumulative => match (requested.highest(), record.highest()) {
            (Some(n), Some(h)) => h >= n,
            _ => false,
        },
    }
}

/// Whether a PII field of purpose `level` is decrypted in a derived output.
/// GRANULAR: the level is requested. CUMULATIVE: the level is at most N.
pub fn field_decrypted(kind: ConsentLevelType, requested: &ConsentLevels, level: u32) -> bool {
    match kind {
        ConsentLevelType::Granular => requested.contains(level),
        ConsentLevelType::Cumulative => requested.highest().is_some_and(|n| level <= n),
    }
}
