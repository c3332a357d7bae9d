//! The reverse of a job: an encrypted (or derived) file back to plaintext,
//! given the keys, for authorised use (`keylink decrypt`).
//!
//! A cell is decrypted when it is a Tink ciphertext (TINK prefix) whose key
//! is known: by the row's `strmMeta.keyLink` when the file has that column,
//! else by the Tink key id in the cell's prefix. A cell whose key is missing
//! (shredded, or not given) is left encrypted and counted, never guessed at.
use alloc::string::String;
use alloc::vec::Vec;

use hashbrown::HashMap;

use crate::cipher::{key_id_of_cell, CellCipher};
use crate::config::{AssociatedData, Charset, LineEnd, QuoteStyle};
use crate::csv::{CsvDecoder, CsvEncoder, DecodeEvent, Record};
use crate::error::{Error, ErrorKind, Result};
use crate::job::KEYS_HEADER;
use crate::tink::TinkKey;

/// How to read the input and write the plaintext.
#[derive(Debug, Clone)]
pub struct DecryptOptions {
    pub delimiter: u8,
    pub charset: Charset,
    pub quote: QuoteStyle,
    pub line_end: LineEnd,
    /// None: try the column name, then empty associated data.
    pub associated_data: Option<AssociatedData>,
    /// Columns to decrypt; None: every column but the `strmMeta.*` ones.
    pub columns: Option<Vec<String>>,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        DecryptOptions {
            delimiter: b',',
            charset: Charset::Utf8,
            quote: QuoteStyle::Always,
            line_end: LineEnd::CrLf,
            associated_data: None,
            columns: None,
        }
    }
}

/// What a decryption did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecryptSummary {
    pub rows: u64,
    pub cells_decrypted: u64,
    /// Ciphertext cells left encrypted because their key is not known.
    pub cells_missing_key: u64,
    /// Ciphertext cells left encrypted because they did not authenticate.
    pub cells_failed: u64,
}

/// Reads a keys output (`keyLink,encryptionKey,policyId,expiresAt`) into
/// (key link, key) pairs. With `kek`, encrypted keysets are unwrapped.
///
/// # Errors
/// `KeyFormat` naming the row of a keys file that cannot be read.
pub fn parse_keys_csv(bytes: &[u8], kek: Option<&CellCipher>) -> Result<Vec<(String, TinkKey)>> {
    let mut dec = CsvDecoder::new(b',', Charset::Utf8);
    let mut keys = Vec::new();
    let mut row = 0u64;
    let mut columns: Option<(usize, usize)> = None;
    let mut on = |ev: DecodeEvent<'_>| -> Result<()> {
        let rec = match ev {
            DecodeEvent::Record(r) => r,
            DecodeEvent::InvalidEncoding { line } => {
                return Err(key_format(alloc::format!("keys file line {line} is not UTF-8")));
            }
        };
        let Some((link_col, key_col)) = columns else {
            let find = |n: &str| rec.fields().position(|f| f == n);
            columns = Some(match (find(KEYS_HEADER[0]), find(KEYS_HEADER[1])) {
                (Some(l), Some(k)) => (l, k),
                _ => return Err(key_format("keys file header must name keyLink and encryptionKey".into())),
            });
            return Ok(());
        };
        row += 1;
        if rec.len() <= link_col.max(key_col) {
            return Err(key_format(alloc::format!("keys file row {row} (line {}) has too few fields", rec.line())));
        }
        let json = rec.get(key_col);
        let parsed = if json.contains("encryptedKeyset") {
            match kek {
                Some(kek) => TinkKey::from_encrypted_keyset_json(json, kek),
                None => return Err(key_format(alloc::format!("keys file row {row} holds an encrypted keyset: a key-encryption key is needed"))),
            }
        } else {
            TinkKey::from_keyset_json(json)
        };
        let found = parsed.map_err(|e| key_format(alloc::format!("keys file row {row}: {e}")))?;
        for k in found {
            keys.push((String::from(rec.get(link_col)), k));
        }
        Ok(())
    };
    dec.push(bytes, &mut on)?;
    dec.finish(&mut on)?;
    Ok(keys)
}

fn key_format(message: String) -> Error {
    Error::new(ErrorKind::KeyFormat { message })
}

struct Ring {
    ciphers: Vec<CellCipher>,
    key_ids: Vec<u32>,
    by_link: HashMap<String, usize>,
    by_id: HashMap<u32, Vec<usize>>,
}

struct Layout {
    decrypt: Vec<bool>,
    names: Vec<String>,
    key_link: Option<usize>,
}

/// A streaming decryptor: push encrypted CSV bytes, get plaintext CSV bytes.
pub struct Decryptor {
    decoder: CsvDecoder,
    ring: Ring,
    options: DecryptOptions,
    layout: Option<Layout>,
    summary: DecryptSummary,
    finished: bool,
}

impl Decryptor {
    /// A decryptor for the given (key link, key) pairs.
    pub fn new(keys: Vec<(String, TinkKey)>, options: DecryptOptions) -> Self {
        let mut ring = Ring { ciphers: Vec::new(), key_ids: Vec::new(), by_link: HashMap::new(), by_id: HashMap::new() };
        for (link, key) in keys {
            let i = ring.ciphers.len();
            ring.ciphers.push(CellCipher::new(&key));
            ring.key_ids.push(key.key_id);
            ring.by_link.insert(link, i);
            ring.by_id.entry(key.key_id).or_default().push(i);
        }
        Decryptor {
            decoder: CsvDecoder::new(options.delimiter, options.charset),
            ring,
            options,
            layout: None,
            summary: DecryptSummary::default(),
            finished: false,
        }
    }

    /// Decrypts the rows `chunk` completes, appending them to `out`.
    ///
    /// # Errors
    /// `InvalidEncoding` naming the row; `EmptyInput`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if self.finished {
            return Err(Error::state("push after finish"));
        }
        let Decryptor { decoder, ring, options, layout, summary, .. } = self;
        decoder.push(chunk, &mut |ev| on_event(ev, ring, options, layout, summary, out))
    }

    /// Ends the input and returns what was done.
    ///
    /// # Errors
    /// As [`Decryptor::push`].
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<DecryptSummary> {
        if !self.finished {
            let Decryptor { decoder, ring, options, layout, summary, .. } = self;
            decoder.finish(&mut |ev| on_event(ev, ring, options, layout, summary, out))?;
            self.finished = true;
        }
        if self.layout.is_none() {
            return Err(ErrorKind::EmptyInput.into());
        }
        Ok(self.summary.clone())
    }
}

fn on_event(
    ev: DecodeEvent<'_>,
    ring: &Ring,
    options: &DecryptOptions,
    layout: &mut Option<Layout>,
    summary: &mut DecryptSummary,
    out: &mut Vec<u8>,
) -> Result<()> {
    let enc = CsvEncoder::new(options.delimiter, options.quote, options.line_end);
    let rec: &Record = match ev {
        DecodeEvent::Record(r) => r,
        DecodeEvent::InvalidEncoding { line } => {
            return Err(ErrorKind::InvalidEncoding { row: summary.rows + 1, line, charset: options.charset.name() }.into());
        }
    };
    let Some(lay) = layout.as_ref() else {
        let names: Vec<String> = rec.fields().map(String::from).collect();
        let decrypt = names
            .iter()
            .map(|n| match &options.columns {
                Some(cols) => cols.iter().any(|c| c == n),
                None => !n.starts_with("strmMeta."),
            })
            .collect();
        let key_link = names.iter().position(|n| n == "strmMeta.keyLink");
        for (i, n) in names.iter().enumerate() {
            enc.field(out, n.as_bytes(), i == 0);
        }
        enc.end_record(out);
        *layout = Some(Layout { decrypt, names, key_link });
        return Ok(());
    };
    summary.rows += 1;
    let row_key = lay.key_link.filter(|&c| c < rec.len()).and_then(|c| ring.by_link.get(rec.get(c)).copied());
    for (i, value) in rec.fields().enumerate() {
        let wanted = lay.decrypt.get(i).copied().unwrap_or(false);
        let plain = if wanted && !value.is_empty() { decrypt_cell(value, &lay.names[i], row_key, ring, options, summary) } else { None };
        match plain {
            Some(p) => enc.field(out, p.as_bytes(), i == 0),
            None => enc.field(out, value.as_bytes(), i == 0),
        }
    }
    enc.end_record(out);
    Ok(())
}

fn decrypt_cell(
    cell: &str,
    column: &str,
    row_key: Option<usize>,
    ring: &Ring,
    options: &DecryptOptions,
    summary: &mut DecryptSummary,
) -> Option<String> {
    let key_id = key_id_of_cell(cell)?;
    let mut candidates: Vec<usize> = Vec::new();
    match row_key {
        Some(k) if ring.key_ids[k] == key_id => candidates.push(k),
        _ => {
            if let Some(ks) = ring.by_id.get(&key_id) {
                candidates.extend_from_slice(ks);
            }
        }
    }
    if candidates.is_empty() {
        summary.cells_missing_key += 1;
        return None;
    }
    let aads: &[&[u8]] = match options.associated_data {
        Some(AssociatedData::None) => &[b""],
        Some(AssociatedData::FieldName) => &[column.as_bytes()],
        None => &[column.as_bytes(), b""],
    };
    for &k in &candidates {
        for aad in aads {
            if let Ok(p) = ring.ciphers[k].open_base64(cell, aad) {
                if let Ok(s) = String::from_utf8(p) {
                    summary.cells_decrypted += 1;
                    return Some(s);
                }
            }
        }
    }
    summary.cells_failed += 1;
    None
}
