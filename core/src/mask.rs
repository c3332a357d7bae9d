//! Masking: keyed hashes that replace a column in a derived output.
//!
//! Two hash types (SPEC section 6, `masked_fields.hash_type`):
//!
//! - `hmac-sha256` (default): HMAC-SHA-256 (RFC 2104 / FIPS 198-1) keyed with
//!   the seed's UTF-8 bytes over the value's UTF-8 bytes, 64 lowercase hex
//!   digits.
//! - `murmur3`: STRM's masking, kept for compatibility with its published
//!   outputs. Exactly:
//!   1. `(h1, h2) = MurmurHash3_x64_128(seed ‖ value, seed = 0)`, the reference
//!      algorithm of Austin Appleby's `MurmurHash3.cpp` (blocks and tail read
//!      little-endian), i.e. what Guava's `Hashing.murmur3_128(0)` computes;
//!   2. output `format!("{:x}{:x}", h1, h2)`: `h1` then `h2`, each as an
//!      unsigned 64-bit number in lowercase hex **without zero padding**
//!      (Java's `Long.toHexString(h1) + Long.toHexString(h2)`), so the output
//!      is 2 to 32 characters long.
//!
//!   This matches all four SPEC section 9 vectors (e.g. seed `hi-there`,
//!   `unique-5` → `1083e8169d7138e990cc30095578452`).
//!
//! # Security
//! MurmurHash3 is not a cryptographic hash: with the seed known, values from a
//! small domain can be recovered by enumeration, and even without it the seed
//! is only prepended, not mixed in as a key. Prefer `hmac-sha256`; `murmur3`
//! exists only so outputs match what STRM produced.
use alloc::string::String;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// HMAC-SHA-256 keyed with `seed` over `value`, lowercase hex, appended to `out`.
pub fn hmac_sha256_hex(seed: &[u8], value: &[u8], out: &mut String) {
    // HMAC takes keys of any length (longer ones are hashed first), so
    // `new_from_slice` cannot fail for it; the `Err` arm only exists because
    // the trait is shared with fixed-size MACs.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(seed) else {
        return;
    };
    mac.update(value);
    let tag = mac.finalize().into_bytes();
    out.reserve(tag.len() * 2);
    for &b in tag.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// STRM's masking: MurmurHash3 x64 128, seed 0, over `seed ‖ value`; the
/// two 64-bit halves in lowercase hex without zero padding, appended to `out`.
pub fn murmur3_hex(seed: &[u8], value: &[u8], out: &mut String) {
    let (h1, h2) = murmur3_x64_128_concat(seed, value, 0);
    push_hex_unpadded(h1, out);
    push_hex_unpadded(h2, out);
}

/// `{:x}` of a u64 without going through `core::fmt` (hot path of derived
/// outputs).
fn push_hex_unpadded(v: u64, out: &mut String) {
    let digits = if v == 0 {
        1
    } else {
        (64 - v.leading_zeros()).div_ceil(4)
    };
    for i in (0..digits).rev() {
        let nibble = (v >> (i * 4)) & 0xf;
        out.push(char::from(HEX[nibble as usize]));
    }
}

const C1: u64 = 0x87c3_7b91_1142_53d5;
const C2: u64 = 0x4cf5_ad43_2745_937f;

#[inline]
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[inline]
fn mix_k1(k1: u64) -> u64 {
    k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2)
}

#[inline]
fn mix_k2(k2: u64) -> u64 {
    k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1)
}

/// MurmurHash3_x64_128 (reference `MurmurHash3.cpp`) of `a ‖ b`, computed
/// without copying the concatenation: the 16-byte blocks are assembled from
/// the two parts as they are read.
pub(crate) fn murmur3_x64_128_concat(a: &[u8], b: &[u8], seed: u64) -> (u64, u64) {
    let total = a.len() + b.len();
    let byte_at = |i: usize| -> u8 { if i < a.len() { a[i] } else { b[i - a.len()] } };
    let mut h1 = seed;
    let mut h2 = seed;
    let nblocks = total / 16;
    let mut block = [0u8; 16];
    for i in 0..nblocks {
        let start = i * 16;
        if start + 16 <= a.len() {
            block.copy_from_slice(&a[start..start + 16]);
        } else if start >= a.len() {
            block.copy_from_slice(&b[start - a.len()..start - a.len() + 16]);
        } else {
            for (j, slot) in block.iter_mut().enumerate() {
                *slot = byte_at(start + j);
            }
        }
        let (lo, hi) = block.split_at(8);
        let mut k1 = [0u8; 8];
        let mut k2 = [0u8; 8];
        k1.copy_from_slice(lo);
        k2.copy_from_slice(hi);

        h1 ^= mix_k1(u64::from_le_bytes(k1));
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        h2 ^= mix_k2(u64::from_le_bytes(k2));
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    // Tail: the last `total % 16` bytes, little-endian into k1 (bytes 0..8)
    // and k2 (bytes 8..16), as the reference's fall-through switch does.
    let tail_start = nblocks * 16;
    let tail_len = total - tail_start;
    let mut k1 = 0u64;
    let mut k2 = 0u64;
    for j in 0..tail_len {
        let byte = u64::from(byte_at(tail_start + j));
        if j < 8 {
            k1 |= byte << (8 * j);
        } else {
            k2 |= byte << (8 * (j - 8));
        }
    }
    if tail_len > 8 {
        h2 ^= mix_k2(k2);
    }
    if tail_len > 0 {
        h1 ^= mix_k1(k1);
    }

    // `usize` → `u64` is lossless on every target Rust supports.
    h1 ^= total as u64;
    h2 ^= total as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn murmur(data: &[u8]) -> (u64, u64) {
        murmur3_x64_128_concat(data, &[], 0)
    }

    #[test]
    fn murmur3_reference_values() {
        // Empty input with seed 0 hashes to zero in the reference algorithm.
        assert_eq!(murmur(b""), (0, 0));
        // Test vectors of the Go package github.com/spaolacci/murmur3
        // (murmur_test.go, seed 0): a short tail, a block plus a tail > 8,
        // and two blocks minus some.
        assert_eq!(
            murmur(b"hello"),
            (0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19)
        );
        assert_eq!(
            murmur(b"hello, world"),
            (0x342f_ac62_3a5e_bc8e, 0x4cdc_bc07_9642_414d)
        );
        assert_eq!(
            murmur(b"19 Jan 2038 at 3:14:07 AM"),
            (0xb89e_5988_b737_affc, 0x664f_c295_0231_b2cb)
        );
    }

    #[test]
    fn split_point_does_not_matter() {
        let data: Vec<u8> = (0u8..=70).collect();
        let whole = murmur(&data);
        for split in 0..=data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(murmur3_x64_128_concat(a, b, 0), whole, "split at {split}");
        }
    }

    #[test]
    fn unpadded_hex() {
        for v in [0u64, 1, 0xf, 0x10, 0x0123_4567_89ab_cdef, u64::MAX] {
            let mut s = String::new();
            push_hex_unpadded(v, &mut s);
            assert_eq!(s, alloc::format!("{v:x}"));
        }
    }
}
