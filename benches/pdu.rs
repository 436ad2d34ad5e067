//! PDU and protobuf encode/decode cost.
//!
//! `cargo bench --bench pdu`

#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

use base::pdu::{read_pdu, ImPdu};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use tt_proto::IM::{BaseDefine, Message};

fn msg() -> Message::IMMsgData {
    Message::IMMsgData {
        from_user_id: 1,
        to_session_id: 2,
        msg_id: 12345,
        create_time: 1_700_000_000,
        msg_type: BaseDefine::MsgType::MSG_TYPE_SINGLE_TEXT,
        msg_data: b"nnZSBwfPCz60q69ddmfIJA==".repeat(4),
        attach_data: None,
    }
}

fn pdu_codec(c: &mut Criterion) {
    let m = msg();
    c.bench_function("encode_msg_data_pdu", |b| {
        b.iter(|| ImPdu::with_msg(3, 0x301, 7, black_box(&m)).unwrap())
    });
    let frame = ImPdu::with_msg(3, 0x301, 7, &m).unwrap().into_bytes();
    c.bench_function("frame_and_decode_msg_data_pdu", |b| {
        b.iter(|| {
            let pdu = read_pdu(black_box(&frame)).unwrap().unwrap();
            pdu.msg::<Message::IMMsgData>().unwrap()
        })
    });
}

criterion_group!(benches, pdu_codec);
criterion_main!(benches);
