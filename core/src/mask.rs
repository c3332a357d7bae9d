//! Masking: keyed hashes that replace a column in a derived output.
use alloc::string::String;

/// HMAC-SHA-256 keyed with `seed` over `value`, lowercase hex, appended to `out`.
pub fn hmac_sha256_hex(seed: &[u8], value: &[u8], out: &mut String) {
    let _ = (seed, value, out);
    todo!()
}

/// STRM's masking: MurmurHash3 x64 128, seed 0, over `seed ‖ value`; the
/// two 64-bit halves in lowercase hex without zero padding, appended to `out`.
pub fn murmur3_hex(seed: &[u8], value: &[u8], out: &mut String) {
    let _ = (seed, value, out);
    todo!()
}
