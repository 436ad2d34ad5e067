//! The attach data a request carries through another server and gets back
//! in the reply: the C++ `AttachData.cpp` (`CDbAttachData`, `CPduAttachData`).
//!
//! msg_server puts it in the `attach_data` field of what it sends to
//! db_proxy, route_server or file_server; those echo it untouched, and the
//! reply finds the client connection (and, for some requests, the PDU to
//! finish the job with) from it. Nobody but the msg_server that wrote it
//! reads it.
//!
//! Layout, big-endian as `CByteStream` writes: `type: u32`, `handle`,
//! `service_type: u32`, then for a PDU attach `len: u32` + `len` bytes.
//! One difference from the C++, on purpose: the handle is 8 bytes (a
//! [`netlib::ConnId`] as [`ConnId::to_u64`]) where the C++ writes its 4-byte
//! socket handle. The id carries a serial, so a reply that comes back after
//! its client left never reaches a newer connection that reused the slot
//! (the C++ can deliver it to whoever got the same fd).

use netlib::ConnId;
use thiserror::Error;

/// `ATTACH_TYPE_*`: what the attach data identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachType {
    /// `ATTACH_TYPE_HANDLE`: the client connection that asked.
    Handle = 1,
    /// `ATTACH_TYPE_PDU`: a PDU body (unused by the C++ msg_server).
    Pdu = 2,
    /// `ATTACH_TYPE_HANDLE_AND_PDU`: a group message waiting for the member list.
    HandleAndPdu = 3,
    /// `ATTACH_TYPE_PDU_FOR_PUSH`: a push waiting for the receiver's status.
    PduForPush = 4,
    /// `ATTACH_TYPE_HANDLE_AND_PDU_FOR_FILE`: a file request waiting for the
    /// receiver's status.
    HandleAndPduForFile = 5,
}

impl AttachType {
    fn from_wire(v: u32) -> Option<AttachType> {
        Some(match v {
            1 => AttachType::Handle,
            2 => AttachType::Pdu,
            3 => AttachType::HandleAndPdu,
            4 => AttachType::PduForPush,
            5 => AttachType::HandleAndPduForFile,
            _ => return None,
        })
    }
}

/// Why attach data coming back could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttachError {
    /// Shorter than its fixed part or its PDU length says.
    #[error("attach data truncated ({0} bytes)")]
    Truncated(usize),
    /// An unknown `type`.
    #[error("unknown attach data type {0}")]
    UnknownType(u32),
}

/// `CDbAttachData` / `CPduAttachData`, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachData {
    /// `m_type`.
    pub kind: AttachType,
    /// `m_handle`: the client connection ([`ConnId::to_u64`]), 0 for none.
    pub handle: u64,
    /// `m_service_type` (always 0 in the C++ msg_server).
    pub service_type: u32,
    /// `m_pdu`: the PDU body carried along (empty for a plain handle).
    pub pdu: Vec<u8>,
}

impl AttachData {
    /// `CDbAttachData(ATTACH_TYPE_HANDLE, handle, 0)`: identifies client `conn`.
    pub fn handle(conn: ConnId) -> AttachData {
        AttachData {
            kind: AttachType::Handle,
            handle: conn.to_u64(),
            service_type: 0,
            pdu: Vec::new(),
        }
    }

    /// `CPduAttachData(kind, handle, len, pdu)`: a PDU body to finish the
    /// job with, and the connection (if any) that started it.
    pub fn with_pdu(kind: AttachType, conn: Option<ConnId>, pdu: Vec<u8>) -> AttachData {
        AttachData {
            kind,
            handle: conn.map_or(0, ConnId::to_u64),
            service_type: 0,
            pdu,
        }
    }

    /// Serializes. A plain handle has no PDU part (as `CDbAttachData`);
    /// every other type has one, possibly empty (as `CPduAttachData`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.pdu.len());
        out.extend_from_slice(&(self.kind as u32).to_be_bytes());
        out.extend_from_slice(&self.handle.to_be_bytes());
        out.extend_from_slice(&self.service_type.to_be_bytes());
        if self.kind != AttachType::Handle || !self.pdu.is_empty() {
            let len = u32::try_from(self.pdu.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&self.pdu[..len as usize]);
        }
        out
    }

    /// Parses what [`encode`](Self::encode) wrote.
    pub fn decode(bytes: &[u8]) -> Result<AttachData, AttachError> {
        let truncated = || AttachError::Truncated(bytes.len());
        let kind_raw = read_u32(bytes, 0).ok_or_else(truncated)?;
        let kind = AttachType::from_wire(kind_raw).ok_or(AttachError::UnknownType(kind_raw))?;
        let handle = bytes
            .get(4..12)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(truncated)?;
        let service_type = read_u32(bytes, 12).ok_or_else(truncated)?;
        let pdu = match read_u32(bytes, 16) {
            None if bytes.len() == 16 => Vec::new(),
            None => return Err(truncated()),
            Some(len) => bytes
                .get(20..20 + len as usize)
                .ok_or_else(truncated)?
                .to_vec(),
        };
        Ok(AttachData {
            kind,
            handle,
            service_type,
            pdu,
        })
    }
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}

/// A request or reply that names its user and carries attach data: what
/// msg_server stamps before forwarding a client's request
/// (`msg.set_user_id(GetUserId()); msg.set_attach_data(...)`) and what it
/// reads and clears in the reply (`msg.clear_attach_data()`).
pub trait Attached: tt_proto::ProtoMessage {
    /// The `user_id` field.
    fn user_id(&self) -> u32;
    /// Sets the `user_id` field.
    fn set_user_id(&mut self, user_id: u32);
    /// The `attach_data` field.
    fn attach(&self) -> Option<&[u8]>;
    /// Sets (or clears, with `None`) the `attach_data` field.
    fn set_attach(&mut self, data: Option<Vec<u8>>);
}

macro_rules! attached {
    ($($t:ty),* $(,)?) => {
        $(impl Attached for $t {
            fn user_id(&self) -> u32 {
                self.user_id
            }
            fn set_user_id(&mut self, user_id: u32) {
                self.user_id = user_id;
            }
            fn attach(&self) -> Option<&[u8]> {
                self.attach_data.as_deref()
            }
            fn set_attach(&mut self, data: Option<Vec<u8>>) {
                self.attach_data = data;
            }
        })*
    };
}

use tt_proto::IM::{Buddy, File, Group, Login, Message};

attached!(
    Buddy::IMRecentContactSessionReq,
    Buddy::IMRecentContactSessionRsp,
    Buddy::IMUsersInfoReq,
    Buddy::IMUsersInfoRsp,
    Buddy::IMRemoveSessionReq,
    Buddy::IMRemoveSessionRsp,
    Buddy::IMAllUserReq,
    Buddy::IMAllUserRsp,
    Buddy::IMUsersStatReq,
    Buddy::IMUsersStatRsp,
    Buddy::IMChangeAvatarReq,
    Buddy::IMChangeAvatarRsp,
    Buddy::IMDepartmentReq,
    Buddy::IMDepartmentRsp,
    Buddy::IMChangeSignInfoReq,
    Buddy::IMChangeSignInfoRsp,
    Message::IMUnreadMsgCntReq,
    Message::IMUnreadMsgCntRsp,
    Message::IMGetMsgListReq,
    Message::IMGetMsgListRsp,
    Message::IMGetLatestMsgIdReq,
    Message::IMGetLatestMsgIdRsp,
    Message::IMGetMsgByIdReq,
    Message::IMGetMsgByIdRsp,
    Login::IMDeviceTokenReq,
    Login::IMDeviceTokenRsp,
    Login::IMPushShieldReq,
    Login::IMPushShieldRsp,
    Login::IMQueryPushShieldReq,
    Login::IMQueryPushShieldRsp,
    Group::IMNormalGroupListReq,
    Group::IMNormalGroupListRsp,
    Group::IMGroupInfoListReq,
    Group::IMGroupInfoListRsp,
    Group::IMGroupCreateReq,
    Group::IMGroupCreateRsp,
    Group::IMGroupChangeMemberReq,
    Group::IMGroupChangeMemberRsp,
    Group::IMGroupShieldReq,
    Group::IMGroupShieldRsp,
    File::IMFileHasOfflineReq,
    File::IMFileHasOfflineRsp,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let conn = ConnId::from_u64((7 << 32) | 3);
        let h = AttachData::handle(conn);
        assert_eq!(h.encode().len(), 16);
        let back = AttachData::decode(&h.encode()).unwrap();
        assert_eq!(back, h);
        assert_eq!(ConnId::from_u64(back.handle), conn);

        let p = AttachData::with_pdu(AttachType::HandleAndPdu, None, b"body".to_vec());
        let back = AttachData::decode(&p.encode()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.handle, 0);
        let empty = AttachData::with_pdu(AttachType::PduForPush, Some(conn), Vec::new());
        assert_eq!(AttachData::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(AttachData::decode(b""), Err(AttachError::Truncated(0)));
        assert_eq!(
            AttachData::decode(&[0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(AttachError::UnknownType(9))
        );
        let mut p = AttachData::with_pdu(AttachType::HandleAndPdu, None, b"body".to_vec()).encode();
        p.pop();
        assert!(matches!(
            AttachData::decode(&p),
            Err(AttachError::Truncated(_))
        ));
        assert!(AttachData::decode(&p[..18]).is_err());
    }
}
