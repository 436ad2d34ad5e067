//! The attach data of a db_proxy request: the C++ `AttachData.cpp`
//! (`CDbAttachData` of type `ATTACH_TYPE_HANDLE`), which db_proxy echoes in
//! its reply so the reply finds the HTTP connection that asked.
//!
//! Layout, big-endian: `type: u32` (1), `handle`, `service_type: u32` (0).
//! Difference from the C++, as in msg_server: the handle is 8 bytes, a
//! [`ConnId`] with its serial, where the C++ writes a 4-byte counter; a
//! reply for a connection that has gone can never reach a newer
//! connection in the same slot.

use netlib::ConnId;
use thiserror::Error;

/// `ATTACH_TYPE_HANDLE`: the attach data names a connection.
const ATTACH_TYPE_HANDLE: u32 = 1;
/// Bytes of the encoded form.
const LEN: usize = 16;

/// Why attach data coming back names no connection.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttachError {
    /// Absent or shorter than 16 bytes.
    #[error("attach data truncated ({0} bytes)")]
    Truncated(usize),
    /// Not `ATTACH_TYPE_HANDLE`.
    #[error("attach data of type {0}, not a connection handle")]
    NotHandle(u32),
}

/// `CDbAttachData(ATTACH_TYPE_HANDLE, handle, 0)` for connection `conn`.
pub fn encode(conn: ConnId) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEN);
    out.extend_from_slice(&ATTACH_TYPE_HANDLE.to_be_bytes());
    out.extend_from_slice(&conn.to_u64().to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out
}

/// The connection that [`encode`] wrote into `bytes`.
pub fn decode(bytes: Option<&[u8]>) -> Result<ConnId, AttachError> {
    let bytes = bytes.unwrap_or_default();
    let kind = bytes
        .get(0..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes);
    let handle = bytes
        .get(4..12)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes);
    match (kind, handle, bytes.len() >= LEN) {
        (Some(ATTACH_TYPE_HANDLE), Some(handle), true) => Ok(ConnId::from_u64(handle)),
        (Some(kind), _, true) => Err(AttachError::NotHandle(kind)),
        _ => Err(AttachError::Truncated(bytes.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_serial() {
        let conn = ConnId::from_u64((9 << 32) | 4);
        let bytes = encode(conn);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[..4], &[0, 0, 0, 1]);
        assert_eq!(decode(Some(&bytes)), Ok(conn));
    }

    #[test]
    fn garbage_names_no_connection() {
        assert_eq!(decode(None), Err(AttachError::Truncated(0)));
        let mut bytes = encode(ConnId::from_u64(5));
        assert_eq!(decode(Some(&bytes[..15])), Err(AttachError::Truncated(15)));
        bytes[3] = 3;
        assert_eq!(decode(Some(&bytes)), Err(AttachError::NotHandle(3)));
    }
}
