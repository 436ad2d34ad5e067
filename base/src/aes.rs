//! Message-text encryption compatible with the C++ `EncDec.cpp` (`CAes`).
//!
//! Clients encrypt message text with a shared 32-byte key: AES-256 in ECB
//! mode over 16-byte blocks, zero padding, the plain length written
//! big-endian in the last 4 bytes of the last block, the whole then base64.
//! When the plain length mod 16 is 0 or above 12 the length cannot fit in the
//! last block, so one block more is added. msg_server decrypts text for push
//! notifications; db_proxy and the tools use the same scheme.

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;

const BLOCK: usize = 16;

/// Why a text could not be encrypted or decrypted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AesError {
    /// The key is not exactly 32 bytes (the C++ would read past a short key).
    #[error("AES key must be exactly 32 bytes, got {0}")]
    KeyLength(usize),
    /// Nothing to encrypt or decrypt (the C++ refuses with -1).
    #[error("empty input")]
    Empty,
    /// The cipher text is not base64.
    #[error("cipher text is not base64")]
    Base64,
    /// The decoded cipher text is not a whole number of blocks.
    #[error("cipher text of {0} bytes is not a multiple of 16")]
    NotBlocks(usize),
    /// The length trailer is larger than what was decrypted (wrong key or garbage).
    #[error("length trailer {0} does not fit the decrypted text")]
    BadLength(u32),
}

/// A `CAes` with its key schedule computed once.
#[derive(Clone)]
pub struct Aes {
    cipher: Aes256,
}

impl std::fmt::Debug for Aes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str("Aes { .. }")
    }
}

impl Aes {
    /// Builds the cipher from the configured `aesKey` (32 bytes).
    pub fn new(key: &[u8]) -> Result<Aes, AesError> {
        let cipher = Aes256::new_from_slice(key).map_err(|_| AesError::KeyLength(key.len()))?;
        Ok(Aes { cipher })
    }

    /// `CAes::Encrypt`: plain bytes to base64 cipher text.
    pub fn encrypt(&self, plain: &[u8]) -> Result<String, AesError> {
        if plain.is_empty() {
            return Err(AesError::Empty);
        }
        let len = u32::try_from(plain.len()).map_err(|_| AesError::BadLength(u32::MAX))?;
        let remain = plain.len() % BLOCK;
        let mut blocks = plain.len().div_ceil(BLOCK);
        if remain == 0 || remain > 12 {
            blocks += 1;
        }
        let mut buf = vec![0u8; blocks * BLOCK];
        buf[..plain.len()].copy_from_slice(plain);
        let end = buf.len();
        buf[end - 4..].copy_from_slice(&len.to_be_bytes());
        for chunk in buf.chunks_exact_mut(BLOCK) {
            self.cipher
                .encrypt_block(GenericArray::from_mut_slice(chunk));
        }
        Ok(STANDARD.encode(&buf))
    }

    /// `CAes::Decrypt`: base64 cipher text back to the plain bytes.
    pub fn decrypt(&self, cipher_text: &[u8]) -> Result<Vec<u8>, AesError> {
        if cipher_text.is_empty() {
            return Err(AesError::Empty);
        }
        let mut buf = STANDARD.decode(cipher_text).map_err(|_| AesError::Base64)?;
        if buf.is_empty() {
            return Err(AesError::Empty);
        }
        if buf.len() % BLOCK != 0 {
            return Err(AesError::NotBlocks(buf.len()));
        }
        for chunk in buf.chunks_exact_mut(BLOCK) {
            self.cipher
                .decrypt_block(GenericArray::from_mut_slice(chunk));
        }
        let end = buf.len();
        let len = u32::from_be_bytes([buf[end - 4], buf[end - 3], buf[end - 2], buf[end - 1]]);
        // The C++ only checks len <= total; a real trailer never overlaps itself.
        if len as usize > end - 4 {
            return Err(AesError::BadLength(len));
        }
        buf.truncate(len as usize);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"12345678901234567890123456789012";

    #[test]
    fn matches_the_cpp_vector() {
        // Measured on the C++ build with the reference key.
        let aes = Aes::new(KEY).unwrap();
        assert_eq!(aes.encrypt(b"hello").unwrap(), "nnZSBwfPCz60q69ddmfIJA==");
        assert_eq!(aes.decrypt(b"nnZSBwfPCz60q69ddmfIJA==").unwrap(), b"hello");
    }

    #[test]
    fn block_count_follows_cpp_rule() {
        let aes = Aes::new(KEY).unwrap();
        let blocks = |n: usize| {
            let enc = aes.encrypt(&vec![b'a'; n]).unwrap();
            STANDARD.decode(enc).unwrap().len() / BLOCK
        };
        assert_eq!(blocks(1), 1);
        assert_eq!(blocks(12), 1);
        assert_eq!(blocks(13), 2, "remain > 12 adds a block");
        assert_eq!(blocks(16), 2, "remain 0 adds a block");
        assert_eq!(blocks(28), 2);
        assert_eq!(blocks(29), 3);
        for n in [1usize, 12, 13, 15, 16, 17, 31, 32, 100, 4096] {
            let plain: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let enc = aes.encrypt(&plain).unwrap();
            assert_eq!(aes.decrypt(enc.as_bytes()).unwrap(), plain, "n={n}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let aes = Aes::new(KEY).unwrap();
        assert_eq!(Aes::new(b"short").unwrap_err(), AesError::KeyLength(5));
        assert_eq!(aes.encrypt(b"").unwrap_err(), AesError::Empty);
        assert_eq!(aes.decrypt(b"").unwrap_err(), AesError::Empty);
        assert_eq!(aes.decrypt(b"!!!").unwrap_err(), AesError::Base64);
        assert_eq!(aes.decrypt(b"YWJj").unwrap_err(), AesError::NotBlocks(3));
        let other = Aes::new(b"abcdefghijklmnopqrstuvwxyz012345").unwrap();
        let enc = other.encrypt(b"hello").unwrap();
        assert!(aes.decrypt(enc.as_bytes()).is_err(), "wrong key detected");
    }
}
