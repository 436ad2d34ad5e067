//! Golden wire vectors: every message vector made by Google's protobuf
//! runtime from the reference `.proto` files decodes into our generated
//! type, re-encodes to the same bytes, and keeps its values; a body with a
//! required field removed is refused, as the C++ runtime refuses it.
//!
//! The vectors live in `tests/data/pb_vectors.jsonl` (a copy of
//! `shared/golden/pb_vectors.jsonl`, data we made).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tt_proto::IM::{BaseDefine, Buddy, Login, Message, Server};
use tt_proto::{decode, encode, reencode_by_name, schema_by_name, DecodeError};

fn vectors() -> Vec<Value> {
    let text = include_str!("data/pb_vectors.jsonl");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("vector line is JSON"))
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    // Small decoder for the vectors' bytes fields (standard alphabet, padded).
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64 char") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn find(message: &str, kind: &str) -> (Vec<u8>, Value) {
    let v = vectors()
        .into_iter()
        .find(|v| v["message"] == message && v["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} vector for {message}"));
    (unhex(v["hex"].as_str().unwrap()), v["fields"].clone())
}

#[test]
fn every_message_vector_round_trips() {
    let mut checked = 0;
    for v in vectors().iter().filter(|v| v.get("message").is_some()) {
        let name = v["message"].as_str().unwrap();
        let bytes = unhex(v["hex"].as_str().unwrap());
        let again = reencode_by_name(name, &bytes)
            .unwrap_or_else(|| panic!("no generated type for {name}"))
            .unwrap_or_else(|e| panic!("{name} ({}) does not decode: {e}", v["kind"]));
        assert_eq!(
            again, bytes,
            "{name} ({}) re-encodes differently",
            v["kind"]
        );
        checked += 1;
    }
    assert_eq!(checked, 220, "all message vectors seen");
}

#[test]
fn pdu_vectors_decode_header_and_body() {
    let pdus: Vec<Value> = vectors()
        .into_iter()
        .filter(|v| v.get("pdu").is_some())
        .collect();
    assert_eq!(pdus.len(), 3);
    for v in &pdus {
        let frame = unhex(v["hex"].as_str().unwrap());
        assert_eq!(
            u32::from_be_bytes(frame[0..4].try_into().unwrap()) as usize,
            frame.len()
        );
        assert_eq!(u16::from_be_bytes([frame[4], frame[5]]), 1, "version");
        assert_eq!(
            u64::from(u16::from_be_bytes([frame[8], frame[9]])),
            v["service_id"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(u16::from_be_bytes([frame[10], frame[11]])),
            v["command_id"].as_u64().unwrap()
        );
        assert_eq!(
            u64::from(u16::from_be_bytes([frame[12], frame[13]])),
            v["seq_num"].as_u64().unwrap()
        );
        let body = &frame[16..];
        let name = v["pdu"].as_str().unwrap();
        assert_eq!(
            reencode_by_name(name, body).unwrap().unwrap(),
            body,
            "{name}"
        );
        let f = &v["fields"];
        match name {
            "IM.Login.IMLoginReq" => {
                let m: Login::IMLoginReq = decode(body).unwrap();
                assert_eq!(m.user_name, f["user_name"].as_str().unwrap());
                assert_eq!(m.password, f["password"].as_str().unwrap());
                assert_eq!(m.online_status as u64, f["online_status"].as_u64().unwrap());
                assert_eq!(m.client_type as u64, f["client_type"].as_u64().unwrap());
                assert_eq!(m.client_version.as_deref(), f["client_version"].as_str());
            }
            "IM.Message.IMMsgData" => {
                let m: Message::IMMsgData = decode(body).unwrap();
                assert_eq!(
                    u64::from(m.from_user_id),
                    f["from_user_id"].as_u64().unwrap()
                );
                assert_eq!(
                    u64::from(m.to_session_id),
                    f["to_session_id"].as_u64().unwrap()
                );
                assert_eq!(u64::from(m.create_time), f["create_time"].as_u64().unwrap());
                assert_eq!(m.msg_type, BaseDefine::MsgType::MSG_TYPE_SINGLE_TEXT);
                assert_eq!(m.msg_data, b64(f["msg_data"].as_str().unwrap()));
            }
            "IM.Other.IMHeartBeat" => assert!(body.is_empty()),
            other => panic!("unexpected PDU vector {other}"),
        }
    }
}

fn check_user(u: &BaseDefine::UserInfo, f: &Value) {
    assert_eq!(u64::from(u.user_id), f["user_id"].as_u64().unwrap());
    assert_eq!(u64::from(u.user_gender), f["user_gender"].as_u64().unwrap());
    assert_eq!(u.user_nick_name, f["user_nick_name"].as_str().unwrap());
    assert_eq!(u.avatar_url, f["avatar_url"].as_str().unwrap());
    assert_eq!(u.email, f["email"].as_str().unwrap());
    assert_eq!(u.user_real_name, f["user_real_name"].as_str().unwrap());
    assert_eq!(u.user_tel, f["user_tel"].as_str().unwrap());
    assert_eq!(u.user_domain, f["user_domain"].as_str().unwrap());
    assert_eq!(u64::from(u.status), f["status"].as_u64().unwrap());
    assert_eq!(u.sign_info.as_deref(), f["sign_info"].as_str());
}

#[test]
fn spot_check_nested_and_repeated_values() {
    let (bytes, f) = find("IM.Buddy.IMAllUserRsp", "full");
    let m: Buddy::IMAllUserRsp = decode(&bytes).unwrap();
    assert_eq!(u64::from(m.user_id), f["user_id"].as_u64().unwrap());
    assert_eq!(
        u64::from(m.latest_update_time),
        f["latest_update_time"].as_u64().unwrap()
    );
    assert_eq!(m.user_list.len(), 2);
    for (u, fu) in m.user_list.iter().zip(f["user_list"].as_array().unwrap()) {
        check_user(u, fu);
    }
    assert_eq!(
        m.attach_data.unwrap(),
        b64(f["attach_data"].as_str().unwrap())
    );

    let (bytes, f) = find("IM.Server.IMValidateRsp", "full");
    let m: Server::IMValidateRsp = decode(&bytes).unwrap();
    assert_eq!(m.user_name, f["user_name"].as_str().unwrap());
    assert_eq!(u64::from(m.result_code), f["result_code"].as_u64().unwrap());
    assert_eq!(m.result_string.as_deref(), f["result_string"].as_str());
    check_user(m.user_info.as_ref().unwrap(), &f["user_info"]);

    let (bytes, f) = find("IM.Message.IMGetMsgListRsp", "full");
    let m: Message::IMGetMsgListRsp = decode(&bytes).unwrap();
    assert_eq!(u64::from(m.session_id), f["session_id"].as_u64().unwrap());
    assert_eq!(m.msg_list.len(), 2);
    let fm = &f["msg_list"][1];
    assert_eq!(
        u64::from(m.msg_list[1].create_time),
        fm["create_time"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(m.msg_list[1].from_session_id),
        fm["from_session_id"].as_u64().unwrap()
    );
    assert_eq!(
        m.msg_list[1].msg_data,
        b64(fm["msg_data"].as_str().unwrap())
    );

    // A value we build encodes to what the reference runtime wrote.
    let (bytes, _) = find("IM.Message.IMGetMsgListRsp", "full");
    assert_eq!(encode(&m), bytes);
}

/// Drops every occurrence of top-level field `field` from a wire message.
fn strip_field(bytes: &[u8], field: u64) -> Vec<u8> {
    fn varint(b: &[u8], p: &mut usize) -> u64 {
        let mut v = 0u64;
        let mut s = 0;
        loop {
            let c = b[*p];
            *p += 1;
            v |= u64::from(c & 0x7f) << s;
            if c & 0x80 == 0 {
                return v;
            }
            s += 7;
        }
    }
    let mut out = Vec::new();
    let mut p = 0;
    while p < bytes.len() {
        let start = p;
        let tag = varint(bytes, &mut p);
        match tag & 7 {
            0 => {
                varint(bytes, &mut p);
            }
            1 => p += 8,
            2 => {
                let len = varint(bytes, &mut p) as usize;
                p += len;
            }
            5 => p += 4,
            t => panic!("wire type {t}"),
        }
        if tag >> 3 != field {
            out.extend_from_slice(&bytes[start..p]);
        }
    }
    out
}

#[test]
fn missing_required_field_is_refused() {
    let mut refused = 0;
    for v in vectors().iter().filter(|v| v["kind"] == "minimal") {
        let name = v["message"].as_str().unwrap();
        let bytes = unhex(v["hex"].as_str().unwrap());
        let schema = schema_by_name(name).unwrap();
        for &field in schema.required {
            let stripped = strip_field(&bytes, field as u64);
            let err = reencode_by_name(name, &stripped).unwrap().unwrap_err();
            assert_eq!(
                err,
                DecodeError::MissingRequired {
                    message: schema.name,
                    field: field as u32
                },
                "{name} without field {field}"
            );
            refused += 1;
        }
    }
    assert!(refused > 200, "only {refused} cases tried");
}

#[test]
fn missing_required_field_in_nested_message_is_refused() {
    let (bytes, _) = find("IM.Server.IMValidateRsp", "full");
    // user_info (field 4) holds a UserInfo; drop its user_id (field 1).
    let m: Server::IMValidateRsp = decode(&bytes).unwrap();
    let mut user = encode(m.user_info.as_ref().unwrap());
    user = strip_field(&user, 1);
    let mut body = strip_field(&bytes, 4);
    body.push(0x22); // field 4, wire type 2
    let mut len = user.len();
    while len >= 0x80 {
        body.push((len as u8) | 0x80);
        len >>= 7;
    }
    body.push(len as u8);
    body.extend_from_slice(&user);
    let err = decode::<Server::IMValidateRsp>(&body).unwrap_err();
    assert_eq!(
        err,
        DecodeError::MissingRequired {
            message: "IM.BaseDefine.UserInfo",
            field: 1
        }
    );
}

#[test]
fn truncated_and_garbage_bodies_are_errors() {
    let (bytes, _) = find("IM.Buddy.IMAllUserRsp", "full");
    for cut in [1, 2, 5, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            decode::<Buddy::IMAllUserRsp>(&bytes[..cut]).is_err(),
            "cut at {cut} accepted"
        );
    }
    for garbage in [&[0xffu8; 12][..], &[0x0f, 0x01], &[0x00], &[0x0a, 0x80]] {
        assert!(decode::<Login::IMLoginReq>(garbage).is_err(), "{garbage:?}");
    }
}

#[test]
fn unknown_value_in_a_required_enum_is_refused() {
    // IMLoginReq: client_type (field 4) is a required ClientType; 0x13 is
    // not one of its values. The C++ runtime treats it as an unknown field,
    // so the required field is missing; pb-rs alone would read WINDOWS.
    let (bytes, _) = find("IM.Login.IMLoginReq", "minimal");
    let mut body = strip_field(&bytes, 4);
    body.extend_from_slice(&[0x20, 0x13]);
    assert_eq!(
        decode::<Login::IMLoginReq>(&body).unwrap_err(),
        DecodeError::MissingRequired {
            message: "IM.Login.IMLoginReq",
            field: 4
        }
    );
    let mut ok = strip_field(&bytes, 4);
    ok.extend_from_slice(&[0x20, 0x01]);
    assert!(decode::<Login::IMLoginReq>(&ok).is_ok());
}

#[test]
fn required_field_with_another_wire_type_is_missing() {
    // user_name (field 1, a string) sent as a varint: protobuf sees an
    // unknown field, so the required user_name is absent.
    let body = [0x08, 0x00, 0x12, 0x01, b'p', 0x18, 0x01, 0x20, 0x01];
    assert_eq!(
        decode::<Login::IMLoginReq>(&body).unwrap_err(),
        DecodeError::MissingRequired {
            message: "IM.Login.IMLoginReq",
            field: 1
        }
    );
}

#[test]
fn tags_over_32_bits_are_refused() {
    // A tag with bits above 32 would be read as field 1 by the decoder and
    // as an unknown field by the check: refused before either.
    let mut body = vec![0x0a, 4, 0x08, 0x05, 0x10, 0x01];
    body.extend([0x8a, 0x80, 0x80, 0x80, 0x10, 0x02, 0x08, 0x80]);
    body.extend([0x78, 0x1d]);
    let r = std::panic::catch_unwind(|| decode::<tt_proto::IM::Buddy::IMUserStatNotify>(&body));
    let r = r.expect("decode never panics");
    assert_eq!(r.unwrap_err(), DecodeError::Wire("tag over 32 bits".into()));
}

#[test]
fn unknown_value_in_an_optional_enum_reads_as_absent() {
    // IMDeviceTokenReq: user_id 7, device_token "t", client_type (field 3,
    // optional ClientType) 0x13, which ClientType does not define. The C++
    // runtime keeps it as an unknown field (has_client_type() is false);
    // pb-rs alone would read CLIENT_TYPE_WINDOWS.
    let body = [0x08, 0x07, 0x12, 0x01, b't', 0x18, 0x13];
    let m = decode::<Login::IMDeviceTokenReq>(&body).unwrap();
    assert_eq!((m.user_id, m.device_token.as_str()), (7, "t"));
    assert_eq!(m.client_type, None);
    let known = [0x08, 0x07, 0x12, 0x01, b't', 0x18, 0x11];
    let m = decode::<Login::IMDeviceTokenReq>(&known).unwrap();
    assert_eq!(m.client_type, Some(BaseDefine::ClientType::CLIENT_TYPE_IOS));
}

#[test]
fn an_unknown_enum_value_does_not_override_a_known_one_at_any_depth() {
    // IMUserStatNotify { user_stat { user_id 5, status OFFLINE, status 99 } }:
    // the C++ keeps OFFLINE and sets 99 aside; pb-rs alone reads the last
    // value, 99, as the default ONLINE.
    let inner = [0x08, 0x05, 0x10, 0x02, 0x10, 0x63];
    let mut body = vec![0x0a, inner.len() as u8];
    body.extend_from_slice(&inner);
    let m = decode::<Buddy::IMUserStatNotify>(&body).unwrap();
    assert_eq!(m.user_stat.user_id, 5);
    assert_eq!(
        m.user_stat.status,
        BaseDefine::UserStatType::USER_STATUS_OFFLINE
    );
}
