//! AES-256-GCM with 96-bit nonces (NIST SP 800-38D), shaped for cells.
//!
//! A cell is a few dozen bytes: two or three counter blocks. `aes_gcm`
//! encrypts the tag mask `E(J0)`, the full blocks and the partial last block
//! in separate calls of the block cipher; without AES instructions (in
//! WebAssembly) the constant-time software AES computes four blocks in one
//! bitsliced pass, and a call of one block costs a whole pass. Here `E(J0)`
//! and the counter blocks go through the block cipher together, in batches
//! of up to 16 blocks padded to whole passes: one pass for a cell of up to
//! 48 bytes instead of three. The output is
//! the standard GCM output, byte for byte (tested against `aes_gcm` and the
//! Wycheproof vectors).
//!
//! # Security
//! Constant time as the underlying AES and GHASH are; the tag comparison
//! does not branch on the data; a failed open leaves no plaintext behind.
//! Keystream and hash key are zeroed when dropped.
use aes_gcm::aes::Aes256Enc;
use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;
use zeroize::Zeroize;

type Block = ghash::Block;

/// Counter blocks per call of the block cipher.
const BATCH: usize = 16;

/// The software AES computes this many blocks in one bitsliced pass (4 with
/// 64-bit words, 2 with 32-bit ones), and a lone block costs a whole pass:
/// calls are padded to a multiple of it (the extra keystream is discarded).
const PASS: usize = 4;

/// Largest plaintext GCM allows: 2^36 − 32 bytes.
const P_MAX: u64 = (1 << 36) - 32;

/// One cell of [`Gcm::seal_cells`]: its nonce and where its plaintext is;
/// the 16 bytes after it take the tag.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CellAt {
    pub(crate) nonce: [u8; 12],
    pub(crate) at: usize,
    pub(crate) len: usize,
}

/// An expanded AES-256 key and its GHASH key.
#[derive(Clone)]
pub(crate) struct Gcm {
    aes: Aes256Enc,
    ghash: GHash,
}

impl Gcm {
    /// `None` unless `key` is 32 bytes.
    pub(crate) fn new(key: &[u8]) -> Option<Gcm> {
        let aes = Aes256Enc::new_from_slice(key).ok()?;
        let mut h = Block::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.as_mut_slice().zeroize();
        Some(Gcm { aes, ghash })
    }

    /// Encrypts `buf` in place; returns the tag. `None` (and `buf` as it
    /// was) above GCM's plaintext limit.
    pub(crate) fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        if buf.len() as u64 > P_MAX || aad.len() as u64 > P_MAX {
            return None;
        }
        let mask = self.apply_ctr(nonce, buf);
        Some(self.tag(&mask, aad, buf))
    }

    /// Seals several cells under this key at once (the cells of one row):
    /// cell `k`'s plaintext `data[at .. at + len]` is encrypted in place and
    /// its tag written to the 16 bytes after it, with associated data
    /// `aad(k)`. The counter blocks of all cells go through the block cipher
    /// together, so a row of three short cells (seven blocks) costs two
    /// bitsliced passes instead of three. Each cell's output is standard
    /// GCM, as [`Gcm::seal`] gives it. `None` (nothing encrypted) if a cell
    /// lies outside `data` or is above GCM's limits.
    pub(crate) fn seal_cells<'a>(&self, data: &mut [u8], cells: &[CellAt], aad: impl Fn(usize) -> &'a [u8]) -> Option<()> {
        for (k, c) in cells.iter().enumerate() {
            let end = c.at.checked_add(c.len)?.checked_add(16)?;
            if end > data.len() || c.len as u64 > P_MAX || aad(k).len() as u64 > P_MAX {
                return None;
            }
        }
        let mut blocks = [Block::default(); BATCH];
        // Where each block's keystream goes: (cell, block of the cell; 0 = E(J0)).
        let mut dest = [(0usize, 0usize); BATCH];
        let mut filled = 0;
        for (k, c) in cells.iter().enumerate() {
            for b in 0..=c.len.div_ceil(16) {
                let block = &mut blocks[filled];
                block[..12].copy_from_slice(&c.nonce);
                // J0 = nonce ‖ 1; the data's counter blocks are 2, 3, ...
                block[12..].copy_from_slice(&(1u32.wrapping_add(b as u32)).to_be_bytes());
                dest[filled] = (k, b);
                filled += 1;
                if filled == BATCH {
                    self.spend(&mut blocks, &dest, filled, data, cells);
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            self.spend(&mut blocks, &dest, filled, data, cells);
        }
        for b in &mut blocks {
            b.as_mut_slice().zeroize();
        }
        // Each tag slot holds E(J0) now: the tag is that XOR the GHASH.
        for (k, c) in cells.iter().enumerate() {
            let hash = self.ghash_of(aad(k), &data[c.at..c.at + c.len]);
            for (t, h) in data[c.at + c.len..c.at + c.len + 16].iter_mut().zip(hash.iter()) {
                *t ^= h;
            }
        }
        Some(())
    }

    /// Encrypts the first `n` counter blocks (padded to whole passes) and
    /// applies them where `dest` says: E(J0) to the cell's tag slot, the
    /// rest XORed into its data.
    fn spend(&self, blocks: &mut [Block; BATCH], dest: &[(usize, usize); BATCH], n: usize, data: &mut [u8], cells: &[CellAt]) {
        let padded = n.next_multiple_of(PASS).min(BATCH);
        self.aes.encrypt_blocks(&mut blocks[..padded]);
        for (ks, &(k, b)) in blocks[..n].iter().zip(&dest[..n]) {
            let c = &cells[k];
            if b == 0 {
                data[c.at + c.len..c.at + c.len + 16].copy_from_slice(ks);
                continue;
            }
            let from = c.at + (b - 1) * 16;
            let to = (from + 16).min(c.at + c.len);
            for (x, y) in data[from..to].iter_mut().zip(ks.iter()) {
                *x ^= *y;
            }
        }
    }

    /// Decrypts `buf` in place if `tag` matches; otherwise `None` with
    /// `buf` zeroed.
    pub(crate) fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> Option<()> {
        if buf.len() as u64 > P_MAX || aad.len() as u64 > P_MAX {
            return None;
        }
        let hash = self.ghash_of(aad, buf);
        let mask = self.apply_ctr(nonce, buf);
        let mut diff = 0u8;
        for ((h, m), t) in hash.iter().zip(mask.iter()).zip(tag) {
            diff |= (h ^ m) ^ t;
        }
        if core::hint::black_box(diff) == 0 {
            Some(())
        } else {
            buf.zeroize();
            None
        }
    }

    /// XORs the keystream (counter blocks 2, 3, ... after J0 = nonce ‖ 1)
    /// into `buf` and returns `E(J0)`, the tag mask.
    fn apply_ctr(&self, nonce: &[u8; 12], buf: &mut [u8]) -> Block {
        let mut blocks = [Block::default(); BATCH];
        let mut mask = Block::default();
        let mut counter: u32 = 1;
        let mut off = 0usize;
        let mut first = true;
        loop {
            let lead = usize::from(first);
            let n = (buf.len() - off).div_ceil(16).min(BATCH - lead);
            let padded = (lead + n).next_multiple_of(PASS).min(BATCH);
            for (i, b) in blocks[..padded].iter_mut().enumerate() {
                b[..12].copy_from_slice(nonce);
                b[12..].copy_from_slice(&counter.wrapping_add(i as u32).to_be_bytes());
            }
            self.aes.encrypt_blocks(&mut blocks[..padded]);
            if first {
                mask = blocks[0];
            }
            let end = (off + n * 16).min(buf.len());
            for (chunk, ks) in buf[off..end].chunks_mut(16).zip(&blocks[lead..lead + n]) {
                for (c, k) in chunk.iter_mut().zip(ks.iter()) {
                    *c ^= *k;
                }
            }
            counter = counter.wrapping_add((lead + n) as u32);
            off = end;
            first = false;
            if off >= buf.len() {
                break;
            }
        }
        for b in &mut blocks {
            b.as_mut_slice().zeroize();
        }
        mask
    }

    /// GHASH over `aad`, `ciphertext` and their bit lengths.
    fn ghash_of(&self, aad: &[u8], ciphertext: &[u8]) -> Block {
        let mut g = self.ghash.clone();
        g.update_padded(aad);
        g.update_padded(ciphertext);
        let mut lens = Block::default();
        lens[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lens[8..].copy_from_slice(&(ciphertext.len() as u64 * 8).to_be_bytes());
        g.update(&[lens]);
        g.finalize()
    }

    fn tag(&self, mask: &Block, aad: &[u8], ciphertext: &[u8]) -> [u8; 16] {
        let hash = self.ghash_of(aad, ciphertext);
        let mut tag = [0u8; 16];
        for ((t, h), m) in tag.iter_mut().zip(hash.iter()).zip(mask.iter()) {
            *t = h ^ m;
        }
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::array::Array;
    use aes_gcm::aead::consts::U12;
    use aes_gcm::{AeadInOut, AesGcm};

    type Reference = AesGcm<Aes256Enc, U12>;

    /// A cheap deterministic byte stream for test inputs.
    fn bytes(seed: u64, n: usize) -> alloc::vec::Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_aes_gcm_for_every_length_up_to_several_batches() {
        for len in (0..=600).chain([1023, 4096, 4097]) {
            let key = bytes(len as u64, 32);
            let nonce: [u8; 12] = bytes(len as u64 + 1, 12).try_into().unwrap();
            let aad = bytes(len as u64 + 2, len % 37);
            let plain = bytes(len as u64 + 3, len);
            let ours = Gcm::new(&key).unwrap();
            let mut buf = plain.clone();
            let tag = ours.seal(&nonce, &aad, &mut buf).unwrap();
            let reference = <Reference as aes_gcm::KeyInit>::new_from_slice(&key).unwrap();
            let mut want = plain.clone();
            let want_tag = reference
                .encrypt_inout_detached(Array::cast_from_core(&nonce), &aad, want.as_mut_slice().into())
                .unwrap();
            assert_eq!(buf, want, "ciphertext, length {len}");
            assert_eq!(&tag[..], &want_tag[..], "tag, length {len}");
            ours.open(&nonce, &aad, &mut buf, &tag).unwrap();
            assert_eq!(buf, plain, "round trip, length {len}");
        }
    }

    #[test]
    fn cells_sealed_together_are_each_standard_gcm() {
        // Rows of 0..6 cells of lengths 0..70 (several batches of blocks for the longer rows).
        for row in 0..400u64 {
            let key = bytes(row, 32);
            let gcm = Gcm::new(&key).unwrap();
            let count = (row % 7) as usize;
            let lens: alloc::vec::Vec<usize> = (0..count).map(|k| ((row as usize) * 13 + k * 29) % 71).collect();
            let aads: alloc::vec::Vec<alloc::vec::Vec<u8>> = (0..count).map(|k| bytes(row * 100 + k as u64, k * 3)).collect();
            let mut data = alloc::vec::Vec::new();
            let mut cells = alloc::vec::Vec::new();
            let mut plains = alloc::vec::Vec::new();
            for (k, &len) in lens.iter().enumerate() {
                data.extend_from_slice(&[0xAA; 5]); // something between the cells
                let at = data.len();
                let plain = bytes(row * 1000 + k as u64, len);
                data.extend_from_slice(&plain);
                data.extend_from_slice(&[0u8; 16]);
                let nonce: [u8; 12] = bytes(row * 7 + k as u64, 12).try_into().unwrap();
                cells.push(CellAt { nonce, at, len });
                plains.push(plain);
            }
            gcm.seal_cells(&mut data, &cells, |k| &aads[k]).unwrap();
            for (k, c) in cells.iter().enumerate() {
                let mut want = plains[k].clone();
                let tag = gcm.seal(&c.nonce, &aads[k], &mut want).unwrap();
                assert_eq!(&data[c.at..c.at + c.len], &want[..], "row {row} cell {k}");
                assert_eq!(&data[c.at + c.len..c.at + c.len + 16], &tag[..], "row {row} cell {k} tag");
                assert_eq!(&data[c.at - 5..c.at], &[0xAA; 5], "row {row}: nothing outside the cells changed");
            }
        }
        let gcm = Gcm::new(&[1u8; 32]).unwrap();
        let mut short = [0u8; 20];
        assert!(gcm.seal_cells(&mut short, &[CellAt { nonce: [0; 12], at: 0, len: 5 }], |_| &[]).is_none(), "no room for the tag");
        assert_eq!(short, [0u8; 20]);
    }

    #[test]
    fn a_changed_bit_anywhere_fails_and_leaves_no_plaintext() {
        let gcm = Gcm::new(&[7u8; 32]).unwrap();
        let nonce = [9u8; 12];
        let mut ct = *b"a cell of some forty bytes of plaintext!";
        let tag = gcm.seal(&nonce, b"col", &mut ct).unwrap();
        for i in 0..ct.len() * 8 {
            let mut c = ct;
            c[i / 8] ^= 1 << (i % 8);
            assert!(gcm.open(&nonce, b"col", &mut c, &tag).is_none());
            assert!(c.iter().all(|&b| b == 0), "no plaintext left behind");
        }
        for i in 0..128 {
            let mut t = tag;
            t[i / 8] ^= 1 << (i % 8);
            assert!(gcm.open(&nonce, b"col", &mut ct.clone(), &t).is_none());
        }
        assert!(gcm.open(&nonce, b"cot", &mut ct.clone(), &tag).is_none());
        assert!(gcm.open(&[8u8; 12], b"col", &mut ct.clone(), &tag).is_none());
        assert!(Gcm::new(&[0u8; 31]).is_none());
    }
}
