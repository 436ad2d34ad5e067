//! MD5 as lower-case hex, the C++ `CMd5::MD5_Calculate`.
//!
//! Passwords travel as md5(plain) and are stored as md5(md5(plain) + salt);
//! msfs and the file server also name things by MD5.

use md5::{Digest, Md5};

/// The 32-character lower-case hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    let digest = Md5::digest(bytes);
    let mut out = String::with_capacity(32);
    for b in digest.iter() {
        out.push(char::from(HEX[(b >> 4) as usize]));
        out.push(char::from(HEX[(b & 0xf) as usize]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"123456"), "e10adc3949ba59abbe56e057f20f883e");
    }
}
