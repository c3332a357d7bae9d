//! The job's CSPRNG: ChaCha20 seeded from the 32-byte seed the caller draws
//! from its platform's secure random source.
//!
//! # Security
//! Two independent streams of one seed: stream 0 gives nonces, in row order;
//! stream 1 gives key material, key ids and key links, in the order keys are
//! first requested. Keeping them apart makes outputs independent of how the
//! input is split into chunks, and a seed must never be reused for two jobs.
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub struct JobRng {
    inner: ChaCha20Rng,
}

impl core::fmt::Debug for JobRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("JobRng(<secret>)")
    }
}

impl JobRng {
    pub const NONCES: u64 = 0;
    pub const KEYS: u64 = 1;

    pub fn new(seed: [u8; 32], stream: u64) -> Self {
        let mut inner = ChaCha20Rng::from_seed(seed);
        inner.set_stream(stream);
        JobRng { inner }
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        self.inner.fill_bytes(out);
    }

    pub fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    /// A random UUID v4 in its canonical lowercase text form.
    pub fn uuid_v4(&mut self) -> alloc::string::String {
        let mut b = [0u8; 16];
        self.fill(&mut b);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        uuid_text(&b)
    }
}

/// A UUID's 16 bytes in canonical text form (lowercase, hyphenated).
pub fn uuid_text(b: &[u8; 16]) -> alloc::string::String {
    let mut s = alloc::string::String::with_capacity(36);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[(byte >> 4) as usize] as char);
        s.push(HEX[(byte & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_uuid_is_v4() {
        let mut a = JobRng::new([1; 32], JobRng::NONCES);
        let mut b = JobRng::new([1; 32], JobRng::KEYS);
        assert_ne!(a.next_u32(), b.next_u32());
        let u = b.uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
