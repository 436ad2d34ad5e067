//! `tt-proto`: the TeamTalk protocol messages.
//!
//! `IM::BaseDefine`, `IM::Login`, ... are generated at build time by
//! quick-protobuf's pb-rs from the `.proto` files beside this crate (ours,
//! wire-compatible with the C++ `pb/` files). Strings and bytes are owned
//! (`String`, `Vec<u8>`), so a decoded message outlives its buffer.
//!
//! Decode with [`decode`], never with `MessageRead` directly: it also
//! refuses a body that lacks a proto2 `required` field, as the C++ runtime
//! does, where pb-rs alone would fill in a default.

#![allow(non_snake_case)]

pub mod wire;

include!(concat!(env!("OUT_DIR"), "/im.rs"));

pub use quick_protobuf::{MessageRead, MessageWrite};
pub use wire::{DecodeError, MessageSchema};

/// A generated protocol message: decodable, encodable, and with the table
/// of its required fields.
pub trait ProtoMessage: for<'a> MessageRead<'a> + MessageWrite {
    /// Required fields and nested message fields of this message.
    const SCHEMA: &'static MessageSchema;
}

/// Decodes `bytes` as `M`, refusing malformed wire data and missing
/// required fields (at any depth). An enum field holding a value its enum
/// does not define reads as absent, as in the C++ runtime (pb-rs alone
/// would read the enum's default).
pub fn decode<M: ProtoMessage>(bytes: &[u8]) -> Result<M, DecodeError> {
    match wire::check_required(M::SCHEMA, bytes)? {
        wire::Checked::Clean => read(bytes),
        wire::Checked::UnknownEnumValues => read(&wire::strip_unknown_enums(M::SCHEMA, bytes)?),
    }
}

fn read<M: ProtoMessage>(bytes: &[u8]) -> Result<M, DecodeError> {
    let mut reader = quick_protobuf::BytesReader::from_bytes(bytes);
    M::from_reader(&mut reader, bytes).map_err(|e| DecodeError::Wire(e.to_string()))
}

/// Encodes `msg` as a bare protobuf body (no length prefix).
pub fn encode<M: MessageWrite>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.get_size());
    // Writing into a Vec cannot fail.
    let _ = msg.write_message(&mut quick_protobuf::Writer::new(&mut out));
    out
}

/// The schema of the message named `full_name` (`IM.Login.IMLoginReq`).
pub fn schema_by_name(full_name: &str) -> Option<&'static MessageSchema> {
    ALL_SCHEMAS.iter().copied().find(|s| s.name == full_name)
}
