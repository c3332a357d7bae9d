//! Decrypting an encrypted file back to plaintext given keysets.
