//! push_server against a fake APNs and a fake FCM (HTTP/2 over TLS on
//! loopback, certificates made at test time): what each provider receives,
//! what msg_server is answered, slow, refusing and absent providers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tt_proto::cid;
use tt_rs::{free_port, PduClient, ServerProcess};

const TOPIC: &str = "com.tt.test";

/// An APNs fake answering by device token: `..410` Unregistered, `..400`
/// BadDeviceToken, `..bad` held for 6 s, anything else 200.
fn apns_handler() -> Handler {
    Arc::new(|r: &Recorded| {
        let token = r.path.rsplit('/').next().unwrap_or("");
        if token.ends_with("410") {
            Reply::status(410, r#"{"reason":"Unregistered","timestamp":1}"#)
        } else if token.ends_with("400") {
            Reply::status(400, r#"{"reason":"BadDeviceToken"}"#)
        } else if token.ends_with("bad") {
            Reply {
                hold: Duration::from_secs(6),
                ..Reply::ok("")
            }
        } else {
            Reply::ok("")
        }
    })
}

/// push_server with APNs token auth against `apns`; the `.p8`'s public half.
fn with_token_auth(
    pki: &TestPki,
    apns: &FakeProvider,
    files: &Files,
    timeout_s: u32,
) -> (ServerProcess, u16, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let p8 = files.write("AuthKey_KEYID12345.p8", &key.serialize_pem());
    let ca = files.write("ca.pem", &pki.ca_pem());
    let port = free_port();
    let text = conf(
        port,
        &format!(
            "ApnsEndpoint={}\nApnsCaPath={ca}\nApnsTopic={TOPIC}\nApnsKeyPath={p8}\n\
             ApnsKeyId=KEYID12345\nApnsTeamId=TEAM123456\nApnsTimeout={timeout_s}\n",
            apns.url()
        ),
    );
    (start_push_server(port, &text), port, key.public_key_pem())
}

fn verify_es256(jwt: &str, public_pem: &str) -> serde_json::Value {
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("KEYID12345"));
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let key = DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap();
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
        .unwrap()
        .claims
}

#[test]
fn apns_token_auth_sends_what_apple_documents_and_answers_in_order() {
    let pki = TestPki::new();
    let apns = FakeProvider::start(&pki, 0, false, apns_handler());
    let files = Files::new();
    let (server, port, public) = with_token_auth(&pki, &apns, &files, 5);
    let mut c = PduClient::connect(port);

    let (ok, gone, bad) = (hex_token("AB01"), hex_token("410"), hex_token("400"));
    let data = r#"{"from_id":1,"msg_type":1}"#;
    let mut silent = ios(&ok);
    silent.push_type = 2;
    silent.push_count = 7;
    let got = push(
        &mut c,
        &push_req(
            "alice-nick:hello",
            data,
            vec![ios(&ok), ios(&gone), ios(&bad)],
        ),
    );
    assert_eq!(
        got,
        vec![(ok.clone(), 0), (gone.clone(), 2), (bad.clone(), 2)],
        "200, 410, 400 in input order"
    );
    assert_eq!(
        codes(&push(&mut c, &push_req("x", data, vec![silent]))),
        vec![0]
    );

    let reqs = apns.wait_requests(4);
    let normal = reqs
        .iter()
        .find(|r| {
            r.path == format!("/3/device/{}", ok.to_lowercase())
                && r.header("apns-priority") == Some("10")
        })
        .unwrap();
    assert_eq!(normal.method, "POST");
    assert_eq!(normal.header("apns-topic"), Some(TOPIC));
    assert_eq!(normal.header("apns-push-type"), Some("alert"));
    let expiration: u64 = normal.header("apns-expiration").unwrap().parse().unwrap();
    let now = base::tick::unix_time() as u64;
    assert!(
        expiration > now + 3_000 && expiration <= now + 3_600,
        "{expiration}"
    );
    assert_eq!(
        normal.json(),
        serde_json::json!({
            "aps": {"alert": {"body": "alice-nick:hello"}, "badge": 1, "sound": "bingbong.aiff"},
            "custom": data,
        })
    );
    let quiet = reqs
        .iter()
        .find(|r| r.header("apns-priority") == Some("5"))
        .unwrap();
    assert_eq!(quiet.header("apns-push-type"), Some("alert"));
    assert_eq!(
        quiet.json(),
        serde_json::json!({"aps": {"badge": 7}, "custom": data})
    );

    // One JWT, verified with the key's public half, on every request.
    let bearers: Vec<&str> = reqs
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap()
                .strip_prefix("bearer ")
                .unwrap()
        })
        .collect();
    assert!(
        bearers.iter().all(|b| *b == bearers[0]),
        "the JWT is reused"
    );
    let claims = verify_es256(bearers[0], &public);
    assert_eq!(claims["iss"], "TEAM123456");
    assert!(claims["iat"].as_u64().unwrap() <= now + 1);
    // One connection, its streams multiplexed.
    assert_eq!(apns.connections(), 1);
    let log = server.log();
    assert!(log.contains("APNs answered 410 Unregistered"), "{log}");
    assert!(log.contains("APNs answered 400 BadDeviceToken"), "{log}");
    assert!(!log.contains(bearers[0]), "the JWT is never logged");
}

#[test]
fn a_held_push_delays_neither_heartbeats_nor_other_pushes() {
    let pki = TestPki::new();
    let apns = FakeProvider::start(&pki, 0, false, apns_handler());
    let files = Files::new();
    let (_server, port, _) = with_token_auth(&pki, &apns, &files, 2);
    let mut c = PduClient::connect(port);
    let (held, quick) = (hex_token("bad"), hex_token("c0ffee"));
    // Open the connection first, so both pushes share it.
    assert_eq!(
        codes(&push(&mut c, &push_req("warm", "", vec![ios(&quick)]))),
        vec![0]
    );

    send_push(&mut c, &push_req("held", "", vec![ios(&held)]));
    apns.wait_requests(2); // the held one is at the fake
    c.send(&heartbeat());
    assert_eq!(
        c.recv().command_id(),
        cid::OTHER_HEARTBEAT,
        "heartbeat first"
    );
    send_push(&mut c, &push_req("quick", "", vec![ios(&quick)]));
    assert_eq!(
        recv_results(&mut c),
        vec![(quick, 0)],
        "the later push first"
    );
    // Then the held one: APNs did not answer within ApnsTimeout.
    assert_eq!(recv_results(&mut c), vec![(held, 3)]);
    assert_eq!(apns.connections(), 1);
}

#[test]
fn apns_down_answers_non_zero_then_delivery_resumes_when_it_is_back() {
    let pki = TestPki::new();
    let mut apns = FakeProvider::start(&pki, 0, false, apns_handler());
    let apns_port = apns.port;
    let files = Files::new();
    let (server, port, _) = with_token_auth(&pki, &apns, &files, 2);
    let mut c = PduClient::connect(port);
    let t = hex_token("1234");
    assert_eq!(
        codes(&push(&mut c, &push_req("a", "", vec![ios(&t)]))),
        vec![0]
    );

    apns.stop();
    assert_eq!(
        codes(&push(&mut c, &push_req("b", "", vec![ios(&t)]))),
        vec![3]
    );
    c.send(&heartbeat());
    assert_eq!(c.recv().command_id(), cid::OTHER_HEARTBEAT);

    let apns = FakeProvider::start(&pki, apns_port, false, apns_handler());
    let mut last = Vec::new();
    for _ in 0..20 {
        last = codes(&push(&mut c, &push_req("c", "", vec![ios(&t)])));
        if last == [0] {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(last, vec![0], "delivered again once APNs is back");
    assert_eq!(
        apns.requests().last().unwrap().json()["aps"]["alert"]["body"],
        "c"
    );
    let log = server.log();
    assert!(log.contains("result 3"), "{log}");
}

#[test]
fn certificate_auth_with_each_encrypted_key_form() {
    let pki = TestPki::new();
    let apns = FakeProvider::start(&pki, 0, true, apns_handler());
    let files = Files::new();
    let plain = std::fs::read_to_string(data("client-key.pem")).unwrap();
    let cert = files.write("apns-dev-cert.pem", &pki.client_cert_pem(&plain));
    let ca = files.write("ca.pem", &pki.ca_pem());
    for key_file in [
        "client-key.pkcs8-enc.pem",
        "client-key.legacy-des3.pem",
        "client-key.legacy-aes128.pem",
        "client-key.pem",
    ] {
        let key = data(key_file);
        let port = free_port();
        let text = conf(
            port,
            &format!(
                "ApnsEndpoint={}\nApnsCaPath={ca}\nApnsTopic={TOPIC}\n",
                apns.url()
            ),
        )
        .replace("CertPath=absent-cert.pem", &format!("CertPath={cert}"))
        .replace(
            "KeyPath=absent-key.pem",
            &format!("KeyPath={}", key.display()),
        );
        let server = start_push_server(port, &text);
        let mut c = PduClient::connect(port);
        let t = hex_token("5");
        assert_eq!(
            codes(&push(&mut c, &push_req("cert", "", vec![ios(&t)]))),
            vec![0],
            "{key_file}: {}",
            server.log()
        );
        let last = apns.requests().pop().unwrap();
        assert_eq!(
            last.header("authorization"),
            None,
            "no JWT with a certificate"
        );
        assert_eq!(last.header("apns-topic"), Some(TOPIC));
    }
    // A wrong password stops the start, naming the key.
    let port = free_port();
    let text = conf(port, "")
        .replace("CertPath=absent-cert.pem", &format!("CertPath={cert}"))
        .replace(
            "KeyPath=absent-key.pem",
            &format!("KeyPath={}", data("client-key.legacy-des3.pem").display()),
        )
        .replace(
            &format!("KeyPassword={PASSWORD}"),
            "KeyPassword=n0t-the-pa55",
        );
    let (code, out) = tt_rs::run_to_exit(PUSH_SERVER, "pushserver.conf", &text, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("KeyPassword"), "{out}");
    assert!(
        !out.contains("n0t-the-pa55"),
        "the password is not printed: {out}"
    );
    // A fake that wants a client certificate refuses token-less, cert-less
    // clients: the push is answered non-zero.
    let other = FakeProvider::start(&pki, 0, true, apns_handler());
    let (_s, port, _) = with_token_auth(&pki, &other, &files, 2);
    let mut c = PduClient::connect(port);
    assert_eq!(
        codes(&push(
            &mut c,
            &push_req("x", "", vec![ios(&hex_token("6"))])
        )),
        vec![3]
    );
}

/// A fake FCM and OAuth2 token endpoint on one origin: counts token
/// fetches, checks the assertion and the bearer, answers `..gone` tokens
/// 404 UNREGISTERED.
fn fcm_handler(fetches: Arc<AtomicUsize>) -> Handler {
    let public = std::fs::read_to_string(data("fcm-service-account-pub.pem")).unwrap();
    Arc::new(move |r: &Recorded| {
        if r.path == "/token" {
            fetches.fetch_add(1, Ordering::SeqCst);
            let form = String::from_utf8_lossy(&r.body).to_string();
            let Some(assertion) = form.split('&').find_map(|kv| kv.strip_prefix("assertion="))
            else {
                return Reply::status(400, r#"{"error":"invalid_request"}"#);
            };
            let mut v = Validation::new(Algorithm::RS256);
            v.validate_aud = false; // checked below
            let key = DecodingKey::from_rsa_pem(public.as_bytes()).unwrap();
            let ok = form
                .contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
                && jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &v)
                    .map(|d| {
                        d.claims["iss"] == "push@tt-test.iam.gserviceaccount.com"
                            && d.claims["scope"]
                                == "https://www.googleapis.com/auth/firebase.messaging"
                            && d.claims["aud"]
                                .as_str()
                                .is_some_and(|a| a.ends_with("/token"))
                    })
                    .unwrap_or(false);
            if !ok {
                return Reply::status(400, r#"{"error":"invalid_grant"}"#);
            }
            return Reply::ok(
                r#"{"access_token":"ya29.test-token","expires_in":3599,"token_type":"Bearer"}"#,
            );
        }
        if r.path != "/v1/projects/tt-test/messages:send" {
            return Reply::status(404, r#"{"error":{"code":404,"status":"NOT_FOUND"}}"#);
        }
        if r.header("authorization") != Some("Bearer ya29.test-token") {
            return Reply::status(401, r#"{"error":{"code":401,"status":"UNAUTHENTICATED"}}"#);
        }
        let token = r.json()["message"]["token"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if token.ends_with("gone") {
            return Reply::status(
                404,
                r#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}"#,
            );
        }
        Reply::ok(r#"{"name":"projects/tt-test/messages/1"}"#)
    })
}

#[test]
fn fcm_delivers_android_pushes_and_caches_its_access_token() {
    let pki = TestPki::new();
    let fetches = Arc::new(AtomicUsize::new(0));
    let fcm = FakeProvider::start(&pki, 0, false, fcm_handler(fetches.clone()));
    let files = Files::new();
    let key = std::fs::read_to_string(data("fcm-service-account-key.pem")).unwrap();
    let account = serde_json::json!({
        "type": "service_account",
        "project_id": "tt-test",
        "private_key_id": "kid-1",
        "private_key": key,
        "client_email": "push@tt-test.iam.gserviceaccount.com",
        "token_uri": format!("{}/token", fcm.url()),
    });
    let sa = files.write("service-account.json", &account.to_string());
    let ca = files.write("ca.pem", &pki.ca_pem());
    let port = free_port();
    let text = conf(
        port,
        &format!(
            "FcmServiceAccountPath={sa}\nFcmProjectId=tt-test\nFcmEndpoint={}\nFcmCaPath={ca}\nApnsTimeout=3\n",
            fcm.url()
        ),
    );
    let server = start_push_server(port, &text);
    let mut c = PduClient::connect(port);
    let data_json = r#"{"from_id":1,"msg_type":1}"#;
    let mut quiet = android("fcm:quiet");
    quiet.push_type = 2;
    quiet.push_count = 4;
    let got = push(
        &mut c,
        &push_req(
            "alice-nick:hi",
            data_json,
            vec![
                android("fcm:ok"),
                android("fcm:gone"),
                ios(&hex_token("7")),
                quiet,
            ],
        ),
    );
    assert_eq!(
        got,
        vec![
            ("fcm:ok".to_string(), 0),
            ("fcm:gone".to_string(), 2),
            (hex_token("7"), 1),
            ("fcm:quiet".to_string(), 0),
        ],
        "{}",
        server.log()
    );
    assert_eq!(
        codes(&push(
            &mut c,
            &push_req("again", "", vec![android("fcm:ok")])
        )),
        vec![0]
    );
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one token fetch, then the cached token"
    );

    let sends: Vec<Recorded> = fcm
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("messages:send"))
        .collect();
    assert_eq!(sends.len(), 4);
    let normal = sends
        .iter()
        .find(|r| r.json()["message"]["token"] == "fcm:ok")
        .unwrap();
    let m = &normal.json()["message"];
    assert_eq!(m["notification"]["body"], "alice-nick:hi");
    assert_eq!(m["android"]["priority"], "high");
    assert_eq!(m["data"]["custom"], data_json);
    let q = sends
        .iter()
        .find(|r| r.json()["message"]["token"] == "fcm:quiet")
        .unwrap();
    let m = &q.json()["message"];
    assert!(m.get("notification").is_none(), "silent: a data message");
    assert_eq!(m["data"]["badge"], "4");
    let log = server.log();
    assert!(log.contains("FCM answered 404 UNREGISTERED"), "{log}");
    assert!(
        !log.contains("ya29.test-token"),
        "the access token is never logged"
    );
}
