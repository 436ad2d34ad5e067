//! PEM certificates and private keys, encrypted or not: what the C++'s
//! `CSSLClientAsync::InitSSL` has OpenSSL read (`SSL_CTX_use_certificate_file`,
//! `SSL_CTX_use_PrivateKey_file` with `KeyPassword` as the password callback).
//!
//! Accepted key forms: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED
//! PRIVATE KEY`, PBES2 as OpenSSL 1.1+ writes it), PKCS#1 / SEC1 (`RSA` / `EC
//! PRIVATE KEY`), and those last two in OpenSSL's older encrypted form
//! (`Proc-Type: 4,ENCRYPTED` with `DEK-Info: DES-EDE3-CBC`, `AES-128-CBC`,
//! `AES-192-CBC` or `AES-256-CBC`, the key derived by `EVP_BytesToKey` with
//! MD5). The PKCS#12-style PBE of very old exports is not read: convert such
//! a key once with `openssl pkcs8 -topk8 -v2 aes-256-cbc`.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use md5::{Digest, Md5};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

/// Biggest key or certificate file read (a chain of a few certificates).
pub const MAX_PEM_FILE: u64 = 256 * 1024;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Over [`MAX_PEM_FILE`].
    #[error("{0} is larger than 256 KiB")]
    TooLarge(String),
    /// Not PEM.
    #[error("not PEM: {0}")]
    Pem(#[from] pem::PemError),
    /// No block of the wanted kind.
    #[error("no {0} in the file")]
    Missing(&'static str),
    /// An encrypted key's cipher we do not know.
    #[error("unsupported key encryption {0:?}")]
    Cipher(String),
    /// Decryption failed: most likely a wrong password.
    #[error("cannot decrypt the key (wrong KeyPassword?): {0}")]
    Decrypt(String),
}

/// Reads a PEM file of at most [`MAX_PEM_FILE`] bytes.
pub fn read_pem_file(path: &str) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_string(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_PEM_FILE {
        return Err(KeyError::TooLarge(path.to_string()));
    }
    std::fs::read(path).map_err(io)
}

/// Every `CERTIFICATE` block of `pem_text`, in order (leaf first).
pub fn parse_certs(pem_text: &[u8]) -> Result<Vec<CertificateDer<'static>>, KeyError> {
    let certs: Vec<_> = pem::parse_many(pem_text)?
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(|p| CertificateDer::from(p.into_contents()))
        .collect();
    if certs.is_empty() {
        return Err(KeyError::Missing("CERTIFICATE"));
    }
    Ok(certs)
}

/// The first private key of `pem_text`, decrypted with `password` if it
/// is encrypted.
pub fn parse_private_key(
    pem_text: &[u8],
    password: &str,
) -> Result<PrivateKeyDer<'static>, KeyError> {
    let block = pem::parse_many(pem_text)?
        .into_iter()
        .find(|p| p.tag().ends_with("PRIVATE KEY"))
        .ok_or(KeyError::Missing("PRIVATE KEY"))?;
    let tag = block.tag().to_string();
    match tag.as_str() {
        "PRIVATE KEY" => Ok(PrivatePkcs8KeyDer::from(block.into_contents()).into()),
        "ENCRYPTED PRIVATE KEY" => {
            let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.contents())
                .map_err(|e| KeyError::Decrypt(e.to_string()))?;
            let doc = info
                .decrypt(password)
                .map_err(|e| KeyError::Decrypt(e.to_string()))?;
            Ok(PrivatePkcs8KeyDer::from(doc.as_bytes().to_vec()).into())
        }
        tag @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") => {
            let der = if block.headers().get("Proc-Type") == Some("4,ENCRYPTED") {
                let dek = block
                    .headers()
                    .get("DEK-Info")
                    .ok_or(KeyError::Cipher("no DEK-Info".into()))?;
                decrypt_legacy(dek, password, block.contents())?
            } else {
                block.into_contents()
            };
            Ok(if tag == "RSA PRIVATE KEY" {
                PrivatePkcs1KeyDer::from(der).into()
            } else {
                PrivateSec1KeyDer::from(der).into()
            })
        }
        other => Err(KeyError::Cipher(other.to_string())),
    }
}

/// OpenSSL's `EVP_BytesToKey(cipher, MD5, salt, password, count 1)`: the
/// key of a `Proc-Type: 4,ENCRYPTED` PEM block (the salt is the IV's first
/// 8 bytes).
pub fn evp_bytes_to_key(password: &[u8], salt: &[u8], key_len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(key_len + 16);
    let mut prev: Vec<u8> = Vec::new();
    while key.len() < key_len {
        let mut h = Md5::new();
        h.update(&prev);
        h.update(password);
        h.update(salt);
        prev = h.finalize().to_vec();
        key.extend_from_slice(&prev);
    }
    key.truncate(key_len);
    key
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Decrypts the body of a legacy encrypted PEM block given its `DEK-Info`.
fn decrypt_legacy(dek_info: &str, password: &str, data: &[u8]) -> Result<Vec<u8>, KeyError> {
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| KeyError::Cipher(dek_info.to_string()))?;
    let iv = unhex(iv_hex.trim()).ok_or_else(|| KeyError::Cipher(dek_info.to_string()))?;
    if iv.len() < 8 {
        return Err(KeyError::Cipher(dek_info.to_string()));
    }
    let pw = password.as_bytes();
    let bad = |e: String| KeyError::Decrypt(e);
    let pad = |e: cbc::cipher::block_padding::UnpadError| bad(e.to_string());
    let len = |e: cbc::cipher::InvalidLength| bad(e.to_string());
    match cipher.trim() {
        "DES-EDE3-CBC" => {
            let key = evp_bytes_to_key(pw, &iv[..8], 24);
            cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
                .map_err(len)?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .map_err(pad)
        }
        "AES-128-CBC" => {
            let key = evp_bytes_to_key(pw, &iv[..8], 16);
            cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
                .map_err(len)?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .map_err(pad)
        }
        "AES-192-CBC" => {
            let key = evp_bytes_to_key(pw, &iv[..8], 24);
            cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
                .map_err(len)?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .map_err(pad)
        }
        "AES-256-CBC" => {
            let key = evp_bytes_to_key(pw, &iv[..8], 32);
            cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                .map_err(len)?
                .decrypt_padded_vec_mut::<Pkcs7>(data)
                .map_err(pad)
        }
        other => Err(KeyError::Cipher(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = include_str!("../tests/data/client-key.pem");
    const PKCS8_ENC: &str = include_str!("../tests/data/client-key.pkcs8-enc.pem");
    const DES3: &str = include_str!("../tests/data/client-key.legacy-des3.pem");
    const AES128: &str = include_str!("../tests/data/client-key.legacy-aes128.pem");
    const RSA_DES3: &str = include_str!("../tests/data/rsa-key.legacy-des3.pem");
    const PW: &str = "tt@mogujie";

    /// The raw private scalar of a P-256 key, whatever its container: the
    /// 32 bytes after the `04 20` OCTET STRING header in SEC1 (also inside
    /// PKCS#8).
    fn scalar(der: &[u8]) -> Vec<u8> {
        let at = der
            .windows(5)
            .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
            .expect("SEC1 private key");
        der[at + 5..at + 37].to_vec()
    }

    #[test]
    fn every_form_yields_the_same_key() {
        let plain = parse_private_key(PLAIN.as_bytes(), "").unwrap();
        assert!(matches!(plain, PrivateKeyDer::Pkcs8(_)));
        let want = scalar(plain.secret_der());
        let enc = parse_private_key(PKCS8_ENC.as_bytes(), PW).unwrap();
        assert!(matches!(enc, PrivateKeyDer::Pkcs8(_)));
        assert_eq!(scalar(enc.secret_der()), want);
        for legacy in [DES3, AES128] {
            let k = parse_private_key(legacy.as_bytes(), PW).unwrap();
            assert!(matches!(k, PrivateKeyDer::Sec1(_)));
            assert_eq!(scalar(k.secret_der()), want);
        }
        let rsa = parse_private_key(RSA_DES3.as_bytes(), PW).unwrap();
        assert!(matches!(rsa, PrivateKeyDer::Pkcs1(_)));
        // A PKCS#1 RSA key: SEQUENCE, version 0.
        assert_eq!(&rsa.secret_der()[4..7], &[0x02, 0x01, 0x00]);
    }

    #[test]
    fn a_wrong_password_is_an_error_not_garbage() {
        for enc in [PKCS8_ENC, DES3, AES128] {
            assert!(matches!(
                parse_private_key(enc.as_bytes(), "wrong"),
                Err(KeyError::Decrypt(_))
            ));
        }
    }

    #[test]
    fn no_key_or_no_pem() {
        assert!(matches!(
            parse_private_key(b"hello", ""),
            Err(KeyError::Missing(_)) | Err(KeyError::Pem(_))
        ));
        assert!(parse_certs(PLAIN.as_bytes()).is_err());
    }

    #[test]
    fn bytes_to_key_matches_openssl() {
        // `openssl enc -des-ede3-cbc -pass pass:tt@mogujie -S 0102030405060708 -P -md md5`
        // prints key=98CA467A34756683A549B41E34280DDA87B6D9A4C40BE2E6
        let key = evp_bytes_to_key(b"tt@mogujie", &[1, 2, 3, 4, 5, 6, 7, 8], 24);
        assert_eq!(
            key,
            unhex("98CA467A34756683A549B41E34280DDA87B6D9A4C40BE2E6").unwrap()
        );
    }
}
