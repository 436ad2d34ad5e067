//! push_server's round trip over loopback: msg_server's request in, the
//! fake APNs (HTTP/2 over TLS, token auth) asked for each token, the
//! answer out. One token per request, and 100 tokens per request (their
//! streams multiplexed on the one connection).
//!
//! `cargo bench -p push_server --bench push_round_trip`

#![allow(clippy::unwrap_used, clippy::expect_used)]
// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, Criterion};
use std::sync::Arc;
use tt_rs::{free_port, PduClient};

fn round_trips(c: &mut Criterion) {
    let pki = TestPki::new();
    let apns = FakeProvider::start(&pki, 0, false, Arc::new(|_: &Recorded| Reply::ok("")));
    let files = Files::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p8 = files.write("AuthKey.p8", &key.serialize_pem());
    let ca = files.write("ca.pem", &pki.ca_pem());
    let port = free_port();
    let _server = start_push_server(
        port,
        &conf(
            port,
            &format!(
                "ApnsEndpoint={}\nApnsCaPath={ca}\nApnsTopic=com.tt.bench\nApnsKeyPath={p8}\n\
                 ApnsKeyId=KEYID12345\nApnsTeamId=TEAM123456\n",
                apns.url()
            ),
        ),
    );
    let mut link = PduClient::connect(port);
    let one = push_req("alice-nick:hello", "{}", vec![ios(&hex_token("1"))]);
    let hundred = push_req(
        "alice-nick:hello",
        "{}",
        (0..100)
            .map(|i| ios(&hex_token(&format!("{i:x}"))))
            .collect(),
    );
    // Connect and make the JWT before measuring.
    assert_eq!(codes(&push(&mut link, &one)), vec![0]);
    c.bench_function("push_round_trip_1_token", |b| {
        b.iter(|| assert_eq!(codes(&push(&mut link, &one)), vec![0]))
    });
    c.bench_function("push_round_trip_100_tokens", |b| {
        b.iter(|| assert!(codes(&push(&mut link, &hundred)).iter().all(|&c| c == 0)))
    });
}

criterion_group!(benches, round_trips);
criterion_main!(benches);
