//! ingestd's HTTP door, HTTP only (`broker = ""`), against curl: every documented content type
//! lands in the raw ring as one record per reading, tagged with its format; every refusal has
//! its status and its counter; a full ring answers 503 + Retry-After and nothing of the refused
//! request is written; HTTPS with a certificate made by openssl; SIGTERM exits 0.
//! Bodies come from encoders nobody here wrote (ciborium, serde_json, prost).

mod support;

use std::time::Duration;

use loadgen::proto::{Reading, ReadingBatch};
use prost::Message;
use records::names::{counter, http};
use records::ContentType;
use support::{curl, drain, openssl_cert, Ingestd, LONG, TOKEN};
use test_brokers::{wait_for, TempDir};

fn cbor(value: &impl serde::Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).unwrap();
    out
}

#[derive(serde::Serialize)]
struct J<'a> {
    d: &'a str,
    s: &'a str,
    v: f64,
}

#[test]
fn every_content_type_lands_one_record_per_reading_and_every_refusal_is_counted() {
    let d = Ingestd::start("types", 64, "");
    let mut ring = d.consumer();
    let (code, out) = d.curl(&["/healthz"]);
    assert_eq!(code, 200, "{out}");

    let one = serde_json::to_vec(&J { d: "a", s: "t", v: 1.0 }).unwrap();
    let (code, out) = d.post("application/json", &one);
    assert_eq!(code, 200, "{out}");
    assert!(out.ends_with("{\"accepted\":1}\n"), "{out}");
    assert_eq!(drain(&mut ring), vec![(ContentType::Json, one.clone())]);

    let js = [J { d: "a", s: "t", v: 1.0 }, J { d: "b", s: "t", v: 2.5 }];
    let each_json: Vec<Vec<u8>> = js.iter().map(|j| serde_json::to_vec(j).unwrap()).collect();
    assert_eq!(
        d.post("application/json; charset=utf-8", &serde_json::to_vec(&js).unwrap())
            .0,
        200
    );
    let ndjson = [
        each_json[0].clone(),
        b"\n".to_vec(),
        each_json[1].clone(),
        b"\n".to_vec(),
    ]
    .concat();
    assert_eq!(d.post("application/x-ndjson", &ndjson).0, 200);
    let each_cbor: Vec<Vec<u8>> = js.iter().map(cbor).collect();
    assert_eq!(d.post("application/cbor", &cbor(&js)).0, 200);
    assert_eq!(
        d.post("application/cbor", &each_cbor.concat()).0,
        200,
        "a CBOR sequence"
    );
    let readings: Vec<Reading> = js
        .iter()
        .map(|j| Reading {
            device: j.d.into(),
            sensor: j.s.into(),
            value: j.v,
            ..Reading::default()
        })
        .collect();
    let batch = ReadingBatch {
        readings: readings.clone(),
    }
    .encode_to_vec();
    let (code, out) = d.post("application/x-protobuf; messageType=telemetry.v1.ReadingBatch", &batch);
    assert_eq!(code, 200, "{out}");
    // A plain protobuf body is a batch too; a bare Reading says so.
    let batch_of_one = ReadingBatch {
        readings: readings[1..].to_vec(),
    }
    .encode_to_vec();
    assert_eq!(d.post("application/x-protobuf", &batch_of_one).0, 200);
    assert_eq!(
        d.post(
            "application/x-protobuf; messageType=telemetry.v1.Reading",
            &readings[0].encode_to_vec()
        )
        .0,
        200
    );
    let each_proto: Vec<Vec<u8>> = readings.iter().map(Message::encode_to_vec).collect();
    let tagged = |ct: ContentType, items: &[Vec<u8>]| items.iter().map(|i| (ct, i.clone())).collect::<Vec<_>>();
    let expected = [
        tagged(ContentType::Json, &each_json),
        tagged(ContentType::Json, &each_json),
        tagged(ContentType::Cbor, &each_cbor),
        tagged(ContentType::Cbor, &each_cbor),
        tagged(ContentType::Protobuf, &each_proto),
        tagged(ContentType::Protobuf, &each_proto[1..]),
        tagged(ContentType::Protobuf, &each_proto[..1]),
    ]
    .concat();
    assert_eq!(drain(&mut ring), expected, "one record per reading, in order, tagged");
    assert_eq!(d.counter(counter::RECEIVED), 13);
    assert_eq!(d.counter(counter::FORWARDED), 13);
    assert_eq!(d.counter(http::ACCEPTED), 8);

    // Refusals: each with its status and counter, and nothing in the ring.
    let auth = format!("Authorization: Bearer {TOKEN}");
    let json = "Content-Type: application/json";
    let (code, out) = d.curl(&["-H", json, "--data-binary", "{}", "/v1/readings"]);
    assert_eq!(code, 401, "no token");
    assert!(out.to_ascii_lowercase().contains("www-authenticate: bearer"), "{out}");
    let wrong = "Authorization: Bearer s3cret-tokeN";
    assert_eq!(
        d.curl(&["-H", json, "-H", wrong, "--data-binary", "{}", "/v1/readings"])
            .0,
        401
    );
    assert_eq!(d.post("text/plain", b"{}").0, 415);
    assert_eq!(d.post("application/x-protobuf; messageType=x.Y", b"").0, 415);
    assert_eq!(d.post("application/json", b"[{\"d\":1},").0, 400);
    assert_eq!(d.post("application/cbor", &cbor(&js)[..5]).0, 400);
    assert_eq!(
        d.post("application/json", &vec![b' '; 9000]).0,
        413,
        "body over max_body_bytes"
    );
    let big = serde_json::to_vec(&J {
        d: &"x".repeat(300),
        s: "t",
        v: 1.0,
    })
    .unwrap();
    assert_eq!(d.post("application/json", &big).0, 413, "a reading over max_payload");
    assert_eq!(d.curl(&["-H", &auth, "/v1/readings"]).0, 405);
    assert_eq!(
        d.curl(&["-H", &auth, "-H", json, "--data-binary", "{}", "/v2/other"]).0,
        404
    );
    assert_eq!(drain(&mut ring), vec![], "nothing of a refused request is written");
    for (reason, n) in [
        (http::UNAUTHORIZED, 2),
        (http::UNSUPPORTED_TYPE, 2),
        (http::BAD_FRAMING, 2),
        (http::TOO_LARGE, 2),
        (http::BAD_METHOD, 1),
        (http::NOT_FOUND, 1),
    ] {
        assert_eq!(d.counter(reason), n, "{reason}");
    }
    assert_eq!(d.counter(http::REQUESTS), 8 + 10);
    assert_eq!(
        d.counter(counter::RECEIVED),
        13,
        "refused readings never became records"
    );
}

#[test]
fn a_full_ring_answers_503_and_takes_nothing_of_the_request() {
    let mut d = Ingestd::start("full", 16, "");
    let ten: Vec<J> = (0..10)
        .map(|i| J {
            d: "a",
            s: "t",
            v: f64::from(i),
        })
        .collect();
    let body = serde_json::to_vec(&ten).unwrap();
    assert_eq!(d.post("application/json", &body).0, 200);
    let (code, out) = d.post("application/json", &body);
    assert_eq!(code, 503, "6 slots left for 10 readings: {out}");
    assert!(out.to_ascii_lowercase().contains("retry-after: 1"), "{out}");
    assert_eq!(d.counter(http::RING_FULL), 1);
    assert_eq!(
        d.post("application/json", &serde_json::to_vec(&ten[..6]).unwrap()).0,
        200,
        "what fits whole is taken"
    );
    let mut ring = d.consumer();
    assert_eq!(drain(&mut ring).len(), 16, "exactly the accepted requests");
    assert_eq!(d.post("application/json", &body).0, 200, "room again once read");
    assert_eq!(d.counter(counter::FORWARDED), 26);
    assert_eq!(d.counter(http::REQUESTS), 4);

    let mut p = d.process.take().unwrap();
    p.signal(15);
    assert_eq!(p.wait_exit(LONG), Some(0));
}

#[test]
fn https_with_a_certificate_made_by_openssl() {
    let dir = TempDir::new("ingestd-https");
    let (cert, key) = openssl_cert(dir.path());
    let d = Ingestd::start(
        "tls",
        64,
        &format!("cert_file = \"{}\"\nkey_file = \"{}\"\n", cert.display(), key.display()),
    );
    let base = format!("https://127.0.0.1:{}", d.port);
    let cacert = cert.display().to_string();
    let auth = format!("Authorization: Bearer {TOKEN}");
    let (code, out) = curl(
        &base,
        &[
            "--cacert",
            &cacert,
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            r#"{"d":"a","s":"t","v":1}"#,
            "/v1/readings",
        ],
    );
    assert_eq!(code, 200, "{out}");
    assert_eq!(drain(&mut d.consumer()).len(), 1);
    // Plain HTTP to the TLS port gets no answer.
    assert_eq!(d.curl(&["/healthz"]).0, 0);
}

#[test]
fn a_client_that_goes_away_mid_body_is_counted_as_aborted() {
    use std::io::Write;
    let d = Ingestd::start("aborted", 64, "");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(
        s,
        "POST /v1/readings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n[{{\"d\":"
    )
    .unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(s);
    wait_for("the request counted as aborted", LONG, || {
        (d.counter(http::ABORTED) == 1).then_some(())
    });
    assert_eq!(d.counter(http::REQUESTS), 1, "one request, one outcome");
    assert_eq!(d.counter(counter::RECEIVED), 0);
}
