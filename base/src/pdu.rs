//! PDU header codec, framing and typed bodies: the C++ `ImPduBase.cpp`
//! (`CImPdu`, `PduHeader_t`, `IsPduAvailable`, `ReadPdu`, `SetPBMsg`).
//!
//! A PDU is a 16-byte big-endian header followed by a protobuf body:
//!
//! | offset | size | field                              |
//! |--------|------|------------------------------------|
//! | 0      | 4    | length, header included            |
//! | 4      | 2    | version (always 1)                 |
//! | 6      | 2    | flag                               |
//! | 8      | 2    | service_id                         |
//! | 10     | 2    | command_id                         |
//! | 12     | 2    | seq_num                            |
//! | 14     | 2    | reserved                           |
//!
//! Unlike the C++, a length below 16 or above [`MAX_PDU_LEN`] is an error
//! value: the C++ underflows on the first (and loses framing, or throws on
//! 0) and has no bound on the second (a peer announcing 4 GiB makes it
//! buffer forever).

use quick_protobuf::Writer;
use thiserror::Error;
use tt_proto::{Command, ProtoMessage};

/// Size of the fixed header (`IM_PDU_HEADER_LEN`).
pub const IM_PDU_HEADER_LEN: usize = 16;
/// The only version the protocol has (`IM_PDU_VERSION`).
pub const IM_PDU_VERSION: u16 = 1;
/// The largest PDU (header included) any tt-rs connection accepts: 32 MiB.
///
/// The C++ has no limit. The biggest legitimate PDUs are file-transfer
/// blocks and message lists, far below this; a frame announcing more is
/// treated as garbage and closes the connection that sent it.
pub const MAX_PDU_LEN: u32 = 32 * 1024 * 1024;

/// The most a client (an app, not a server) may send in one PDU. A client's
/// biggest PDUs are audio messages (a 60 s clip is under 100 KiB) and id
/// lists; files and images go through file_server and msfs. A client
/// announcing more is closed before its body is buffered, so one request
/// cannot make a server decode, forward and answer 32 MiB of ids.
pub const CLIENT_MAX_PDU_LEN: u32 = 1024 * 1024;

/// Why a frame or a body was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PduError {
    /// The announced length cannot even hold the header.
    #[error("PDU length {0} is below the {IM_PDU_HEADER_LEN}-byte header")]
    LengthTooSmall(u32),
    /// The announced length is above [`MAX_PDU_LEN`].
    #[error("PDU length {0} exceeds the maximum of {MAX_PDU_LEN} bytes")]
    LengthTooLarge(u32),
    /// The announced length is above the limit of this connection (see
    /// [`CLIENT_MAX_PDU_LEN`]).
    #[error("PDU length {length} exceeds this connection's limit of {limit} bytes")]
    LengthOverLimit {
        /// Length written in the header.
        length: u32,
        /// The connection's limit.
        limit: u32,
    },
    /// A buffer given as one whole frame is shorter or longer than its header says.
    #[error("frame of {actual} bytes announces {announced}")]
    LengthMismatch {
        /// Length written in the header.
        announced: u32,
        /// Bytes actually present.
        actual: usize,
    },
    /// The body does not decode as the message the command carries.
    #[error("body of command {service_id}/{command_id:#x} does not decode: {source}")]
    BadBody {
        /// Service of the PDU whose body failed.
        service_id: u16,
        /// Command of the PDU whose body failed.
        command_id: u16,
        /// What the protobuf decoder said.
        source: tt_proto::DecodeError,
    },
    /// The message could not be encoded (only a broken `MessageWrite` impl can do this).
    #[error("body does not encode: {0}")]
    Encode(String),
}

/// The decoded 16-byte header (`PduHeader_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PduHeader {
    /// Whole frame length, header included.
    pub length: u32,
    /// Protocol version, 1.
    pub version: u16,
    /// Flag word, 0 in practice.
    pub flag: u16,
    /// `IM.BaseDefine.ServiceID`.
    pub service_id: u16,
    /// Command within the service (`IM.BaseDefine.*CmdID`).
    pub command_id: u16,
    /// Request sequence number, echoed in replies.
    pub seq_num: u16,
    /// Reserved, 0 (the C++ spells it `reversed`).
    pub reserved: u16,
}

impl PduHeader {
    /// Decodes a header from the first 16 bytes of `buf` and checks its length
    /// field. Returns `Ok(None)` when fewer than 16 bytes are there yet.
    pub fn parse(buf: &[u8]) -> Result<Option<PduHeader>, PduError> {
        let Some(raw) = buf.get(..IM_PDU_HEADER_LEN) else {
            return Ok(None);
        };
        let u16_at = |i: usize| u16::from_be_bytes([raw[i], raw[i + 1]]);
        let header = PduHeader {
            length: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            version: u16_at(4),
            flag: u16_at(6),
            service_id: u16_at(8),
            command_id: u16_at(10),
            seq_num: u16_at(12),
            reserved: u16_at(14),
        };
        check_length(header.length)?;
        Ok(Some(header))
    }

    /// Encodes the header, big-endian, as `CImPdu::WriteHeader` does.
    pub fn to_bytes(&self) -> [u8; IM_PDU_HEADER_LEN] {
        let mut out = [0u8; IM_PDU_HEADER_LEN];
        out[0..4].copy_from_slice(&self.length.to_be_bytes());
        out[4..6].copy_from_slice(&self.version.to_be_bytes());
        out[6..8].copy_from_slice(&self.flag.to_be_bytes());
        out[8..10].copy_from_slice(&self.service_id.to_be_bytes());
        out[10..12].copy_from_slice(&self.command_id.to_be_bytes());
        out[12..14].copy_from_slice(&self.seq_num.to_be_bytes());
        out[14..16].copy_from_slice(&self.reserved.to_be_bytes());
        out
    }
}

fn check_length(length: u32) -> Result<(), PduError> {
    if (length as usize) < IM_PDU_HEADER_LEN {
        Err(PduError::LengthTooSmall(length))
    } else if length > MAX_PDU_LEN {
        Err(PduError::LengthTooLarge(length))
    } else {
        Ok(())
    }
}

/// `CImPdu::IsPduAvailable`: is a whole PDU at the front of `buf`?
///
/// `Ok(Some(len))` when the first `len` bytes are one whole frame,
/// `Ok(None)` when more bytes are needed, and an error when the header
/// announces an impossible length (the connection should be closed: framing
/// is lost).
pub fn is_pdu_available(buf: &[u8]) -> Result<Option<usize>, PduError> {
    is_pdu_available_within(buf, MAX_PDU_LEN)
}

/// [`is_pdu_available`] for a connection whose PDUs may not exceed `limit`
/// bytes: a header announcing more is an error as soon as it arrives.
pub fn is_pdu_available_within(buf: &[u8], limit: u32) -> Result<Option<usize>, PduError> {
    match PduHeader::parse(buf)? {
        Some(h) if h.length > limit => Err(PduError::LengthOverLimit {
            length: h.length,
            limit,
        }),
        Some(h) if buf.len() >= h.length as usize => Ok(Some(h.length as usize)),
        _ => Ok(None),
    }
}

/// `CImPdu::ReadPdu`: copies the whole PDU at the front of `buf`, if there
/// is one. The caller drops [`ImPdu::len`] bytes from its buffer afterwards.
pub fn read_pdu(buf: &[u8]) -> Result<Option<ImPdu>, PduError> {
    Ok(is_pdu_available(buf)?.map(|len| ImPdu {
        frame: buf[..len].to_vec(),
    }))
}

/// Reads one whole PDU from a blocking stream (the client library, test
/// peers, tools; the servers frame on their event loop instead). A header
/// that announces an impossible length is `InvalidData`.
pub fn read_frame(r: &mut impl std::io::Read) -> std::io::Result<ImPdu> {
    let mut head = [0u8; IM_PDU_HEADER_LEN];
    r.read_exact(&mut head)?;
    let invalid = |e: PduError| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let h = PduHeader::parse(&head)
        .map_err(invalid)?
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))?;
    let mut frame = head.to_vec();
    frame.resize(h.length as usize, 0);
    r.read_exact(&mut frame[IM_PDU_HEADER_LEN..])?;
    ImPdu::from_frame(frame).map_err(invalid)
}

/// One PDU, kept as its whole wire frame so that it is sent (or forwarded
/// unchanged, as route_server does) without another copy.
#[derive(Clone, PartialEq, Eq)]
pub struct ImPdu {
    /// Header and body, exactly as on the wire; the header is kept up to date.
    frame: Vec<u8>,
}

impl std::fmt::Debug for ImPdu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImPdu")
            .field("header", &self.header())
            .field("body_len", &self.body().len())
            .finish()
    }
}

impl ImPdu {
    /// An empty-bodied PDU for `service_id`/`command_id` (version 1, seq 0).
    pub fn new(service_id: u16, command_id: u16) -> ImPdu {
        let header = PduHeader {
            length: IM_PDU_HEADER_LEN as u32,
            version: IM_PDU_VERSION,
            service_id,
            command_id,
            ..PduHeader::default()
        };
        ImPdu {
            frame: header.to_bytes().to_vec(),
        }
    }

    /// A PDU carrying `msg` as its body (`CImPdu::SetPBMsg` plus the ids).
    pub fn with_msg<M: ProtoMessage>(
        service_id: u16,
        command_id: u16,
        seq_num: u16,
        msg: &M,
    ) -> Result<ImPdu, PduError> {
        let mut pdu = ImPdu::new(service_id, command_id);
        pdu.set_seq_num(seq_num);
        pdu.set_msg(msg)?;
        Ok(pdu)
    }

    /// A PDU carrying `msg` under the command its type is carried by
    /// ([`Command`]), with `seq_num`.
    pub fn for_msg<M: Command>(seq_num: u16, msg: &M) -> Result<ImPdu, PduError> {
        ImPdu::with_msg(M::SID, M::CID, seq_num, msg)
    }

    /// Takes ownership of one whole frame, checking that its header's
    /// length matches the buffer.
    pub fn from_frame(frame: Vec<u8>) -> Result<ImPdu, PduError> {
        let header = PduHeader::parse(&frame)?.ok_or(PduError::LengthMismatch {
            announced: 0,
            actual: frame.len(),
        })?;
        if header.length as usize != frame.len() {
            return Err(PduError::LengthMismatch {
                announced: header.length,
                actual: frame.len(),
            });
        }
        Ok(ImPdu { frame })
    }

    /// Replaces the body with `msg`, encoded straight after the header.
    pub fn set_msg<M: ProtoMessage>(&mut self, msg: &M) -> Result<(), PduError> {
        self.frame.truncate(IM_PDU_HEADER_LEN);
        self.frame.reserve(msg.get_size());
        msg.write_message(&mut Writer::new(&mut self.frame))
            .map_err(|e| PduError::Encode(e.to_string()))?;
        self.set_length()
    }

    /// Replaces the body with raw bytes (already-encoded protobuf).
    pub fn set_body(&mut self, body: &[u8]) -> Result<(), PduError> {
        self.frame.truncate(IM_PDU_HEADER_LEN);
        self.frame.extend_from_slice(body);
        self.set_length()
    }

    fn set_length(&mut self) -> Result<(), PduError> {
        let len = u32::try_from(self.frame.len()).unwrap_or(u32::MAX);
        check_length(len)?;
        self.frame[0..4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }

    /// Decodes the body as `M`, refusing a body that lacks one of `M`'s
    /// proto2 `required` fields, as the C++ `ParseFromArray` does.
    pub fn msg<M: ProtoMessage>(&self) -> Result<M, PduError> {
        tt_proto::decode::<M>(self.body()).map_err(|source| PduError::BadBody {
            service_id: self.service_id(),
            command_id: self.command_id(),
            source,
        })
    }

    /// The decoded header.
    pub fn header(&self) -> PduHeader {
        // The frame always holds a full header (every constructor ensures it).
        PduHeader {
            length: self.frame.len() as u32,
            version: self.u16_at(4),
            flag: self.u16_at(6),
            service_id: self.u16_at(8),
            command_id: self.u16_at(10),
            seq_num: self.u16_at(12),
            reserved: self.u16_at(14),
        }
    }

    fn u16_at(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.frame[i], self.frame[i + 1]])
    }

    fn put_u16(&mut self, i: usize, v: u16) {
        self.frame[i..i + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Whole frame length, header included.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Never true: a PDU always has its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// `IM.BaseDefine.ServiceID` of this PDU.
    pub fn service_id(&self) -> u16 {
        self.u16_at(8)
    }

    /// Command id of this PDU.
    pub fn command_id(&self) -> u16 {
        self.u16_at(10)
    }

    /// Sequence number (echoed by replies).
    pub fn seq_num(&self) -> u16 {
        self.u16_at(12)
    }

    /// Flag word.
    pub fn flag(&self) -> u16 {
        self.u16_at(6)
    }

    /// Protocol version.
    pub fn version(&self) -> u16 {
        self.u16_at(4)
    }

    /// Reserved word.
    pub fn reserved(&self) -> u16 {
        self.u16_at(14)
    }

    /// Sets the service id.
    pub fn set_service_id(&mut self, v: u16) {
        self.put_u16(8, v)
    }

    /// Sets the command id.
    pub fn set_command_id(&mut self, v: u16) {
        self.put_u16(10, v)
    }

    /// Sets the sequence number, as replies copy the request's.
    pub fn set_seq_num(&mut self, v: u16) {
        self.put_u16(12, v)
    }

    /// Sets the flag word.
    pub fn set_flag(&mut self, v: u16) {
        self.put_u16(6, v)
    }

    /// Sets the reserved word.
    pub fn set_reserved(&mut self, v: u16) {
        self.put_u16(14, v)
    }

    /// The protobuf body.
    pub fn body(&self) -> &[u8] {
        &self.frame[IM_PDU_HEADER_LEN..]
    }

    /// The whole wire frame, ready to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.frame
    }

    /// The whole wire frame, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32, body: &[u8]) -> Vec<u8> {
        let h = PduHeader {
            length: len,
            version: 1,
            service_id: 1,
            command_id: 0x103,
            seq_num: 7,
            ..Default::default()
        };
        let mut v = h.to_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn header_round_trips() {
        let h = PduHeader {
            length: 0x0102_0304,
            version: 1,
            flag: 2,
            service_id: 3,
            command_id: 4,
            seq_num: 5,
            reserved: 6,
        };
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..4], &[1, 2, 3, 4]);
        assert_eq!(&bytes[8..10], &[0, 3]);
        assert_eq!(PduHeader::parse(&bytes), Ok(Some(h)));
    }

    #[test]
    fn framing_waits_for_whole_pdu() {
        let f = frame(20, b"abcd");
        assert_eq!(is_pdu_available(&f[..10]), Ok(None));
        assert_eq!(is_pdu_available(&f[..19]), Ok(None));
        assert_eq!(is_pdu_available(&f), Ok(Some(20)));
        let mut two = f.clone();
        two.extend_from_slice(&f);
        let pdu = read_pdu(&two).unwrap().unwrap();
        assert_eq!(pdu.len(), 20);
        assert_eq!(pdu.body(), b"abcd");
        assert_eq!(pdu.command_id(), 0x103);
        assert_eq!(pdu.seq_num(), 7);
    }

    #[test]
    fn short_length_is_an_error() {
        for len in [0u32, 1, 15] {
            assert_eq!(
                is_pdu_available(&frame(len, b"")),
                Err(PduError::LengthTooSmall(len))
            );
        }
    }

    #[test]
    fn a_connection_limit_refuses_on_the_header_alone() {
        let limit = CLIENT_MAX_PDU_LEN;
        assert_eq!(
            is_pdu_available_within(&frame(limit + 1, b""), limit),
            Err(PduError::LengthOverLimit {
                length: limit + 1,
                limit
            })
        );
        assert_eq!(is_pdu_available_within(&frame(limit, b""), limit), Ok(None));
        let whole = frame(20, b"abcd");
        assert_eq!(is_pdu_available_within(&whole, limit), Ok(Some(20)));
    }

    #[test]
    fn huge_length_is_an_error() {
        let f = frame(u32::MAX, b"");
        assert_eq!(
            is_pdu_available(&f),
            Err(PduError::LengthTooLarge(u32::MAX))
        );
        assert!(is_pdu_available(&frame(MAX_PDU_LEN + 1, b"")).is_err());
        assert_eq!(is_pdu_available(&frame(MAX_PDU_LEN, b"")), Ok(None));
    }

    #[test]
    fn from_frame_checks_length() {
        assert!(ImPdu::from_frame(frame(20, b"abc")).is_err());
        assert!(ImPdu::from_frame(vec![0; 3]).is_err());
        assert!(ImPdu::from_frame(frame(19, b"abc")).is_ok());
    }

    #[test]
    fn frames_read_from_a_stream() {
        let mut bytes = frame(20, b"abcd");
        bytes.extend_from_slice(&frame(3, b""));
        let mut r = std::io::Cursor::new(bytes);
        assert_eq!(read_frame(&mut r).unwrap().body(), b"abcd");
        let e = read_frame(&mut r).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let e = read_frame(&mut std::io::Cursor::new(frame(20, b"ab"))).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn setters_write_through() {
        let mut p = ImPdu::new(2, 0x201);
        p.set_seq_num(9);
        p.set_body(b"xyz").unwrap();
        let h = PduHeader::parse(p.as_bytes()).unwrap().unwrap();
        assert_eq!(h.length, 19);
        assert_eq!(h.version, 1);
        assert_eq!(h.service_id, 2);
        assert_eq!(h.command_id, 0x201);
        assert_eq!(h.seq_num, 9);
        assert_eq!(p.header(), h);
    }
}
