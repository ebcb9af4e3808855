//! The hot path allocates nothing: a counting global allocator (this test binary's own) shows
//! that decoding valid CBOR, JSON and protobuf payloads, and rejecting bad CBOR and protobuf,
//! costs no allocation.
//!
//! Also a measurement, not run by default (timings are never asserted):
//!
//! ```sh
//! cargo test -p decoded --release --test alloc -- --ignored --nocapture
//! ```
//!
//! prints ns per message and allocations per message for this crate's decoder (CBOR, JSON and
//! protobuf, the seed's reading in each) and, for
//! comparison, ciborium's `de::from_reader` into a struct with `String` fields (ciborium reads
//! through `io::Read` and cannot lend `&str` out of the payload).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

mod support;

use decoded::format::FormatChooser;
use decoded::stage::decode_raw;
use decoded::{decode, Format, Reason};
use records::{ContentType, RawRecord};
use support::reference_proto::ProtoReading;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const-initialised thread local
// without a destructor, so touching it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Seed {
    d: String,
    s: String,
    v: f64,
    u: String,
    n: u64,
}

/// The seed's record: `{d, s, v, u, n}`, 35 bytes of CBOR with `v` = 21.5 as f16.
fn seed_cbor() -> Vec<u8> {
    let mut out = Vec::new();
    let seed = Seed {
        d: "dev00001".into(),
        s: "sen002".into(),
        v: 21.5,
        u: "C".into(),
        n: 1_000,
    };
    ciborium::ser::into_writer(&seed, &mut out).unwrap();
    out
}

/// The same reading as protobuf, encoded by prost.
fn seed_proto() -> Vec<u8> {
    ProtoReading {
        unit: Some("C".into()),
        seq: Some(1_000),
        ..ProtoReading::new("dev00001", "sen002", 21.5)
    }
    .encode()
}

fn cbor<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

#[test]
fn decoding_allocates_nothing() {
    #[derive(serde::Serialize)]
    struct Doc<V> {
        d: &'static str,
        s: &'static str,
        v: V,
        t: u64,
        extra: [u8; 3],
    }
    let valid_cbor = [
        seed_cbor(),
        cbor(&Doc {
            d: "dev1",
            s: "temp",
            v: 0.1f64,
            t: 1,
            extra: [1, 2, 3],
        }),
        cbor(&Doc {
            d: "dev1",
            s: "temp",
            v: 1.1f32,
            t: 1,
            extra: [1, 2, 3],
        }),
        cbor(&Doc {
            d: "dev1",
            s: "temp",
            v: -40i64,
            t: 1,
            extra: [1, 2, 3],
        }),
    ];
    let bad_cbor: Vec<(Vec<u8>, Reason)> = vec![
        (vec![0xff, 0x00], Reason::Malformed),
        (valid_cbor[0][..20].to_vec(), Reason::Malformed),
        (
            cbor(&Doc {
                d: "dev1",
                s: "temp",
                v: "x",
                t: 1,
                extra: [0; 3],
            }),
            Reason::BadType,
        ),
        (
            cbor(&Doc {
                d: "",
                s: "temp",
                v: 1,
                t: 1,
                extra: [0; 3],
            }),
            Reason::EmptyId,
        ),
        (
            cbor(&Doc {
                d: "dev1",
                s: "temp",
                v: f64::NAN,
                t: 1,
                extra: [0; 3],
            }),
            Reason::NonFinite,
        ),
        (
            cbor(
                &[("d", "dev1")]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            ),
            Reason::MissingField,
        ),
    ];
    let valid_json: [&[u8]; 3] = [
        br#"{"d":"dev00001","s":"sen002","v":21.5,"u":"C","n":1000}"#,
        br#" {"t":1700000000000, "v":-40, "s":"temp", "d":"dev1", "x":[1,"a",true], "y":null, "z":{"k":"v"}}"#,
        br#"{"d":"dev1","s":"temp","v":1e-3}"#,
    ];
    let valid_proto = [
        seed_proto(),
        ProtoReading {
            time_ms: Some(1_700_000_000_000),
            ..ProtoReading::new("dev1", "temp", -40.0)
        }
        .encode(),
        ProtoReading::new("dev1", "temp", 0.0).encode(),
    ];
    let bad_proto: Vec<(Vec<u8>, Reason)> = vec![
        (valid_proto[0][..5].to_vec(), Reason::Malformed),
        (Vec::new(), Reason::MissingField),
        (ProtoReading::new("dev1", "temp", f64::NAN).encode(), Reason::NonFinite),
        (
            ProtoReading::new(&"d".repeat(60), "temp", 1.0).encode(),
            Reason::IdTooLong,
        ),
    ];
    let chooser = FormatChooser::new(&Default::default()).unwrap();
    let raws: Vec<RawRecord> = valid_cbor
        .iter()
        .map(|p| RawRecord::new(b"site/s1/sensor/t", p, ContentType::Unknown, 5).unwrap())
        .chain(
            valid_json
                .iter()
                .map(|p| RawRecord::new(b"site/s1/sensor/t", p, ContentType::Unknown, 5).unwrap()),
        )
        .chain(
            valid_proto
                .iter()
                .map(|p| RawRecord::new(b"site/s1/sensor/t", p, ContentType::Protobuf, 5).unwrap()),
        )
        .collect();

    let n = allocations(|| {
        for _ in 0..1000 {
            for p in &valid_cbor {
                black_box(decode(black_box(p), Format::Cbor).unwrap());
            }
            for (p, reason) in &bad_cbor {
                assert_eq!(decode(black_box(p), Format::Cbor).unwrap_err(), *reason);
            }
            for p in valid_json {
                black_box(decode(black_box(p), Format::Json).unwrap());
            }
            for p in &valid_proto {
                black_box(decode(black_box(p), Format::Protobuf).unwrap());
            }
            for (p, reason) in &bad_proto {
                assert_eq!(decode(black_box(p), Format::Protobuf).unwrap_err(), *reason);
            }
            for (i, raw) in raws.iter().enumerate() {
                black_box(decode_raw(raw, &chooser, i as u64).unwrap());
            }
        }
    });
    assert_eq!(n, 0, "allocations while decoding");

    // The documented exceptions: an escaped string, or an unknown value nested two levels deep,
    // uses serde_json's scratch buffer: one allocation for that message.
    for json in [
        &br#"{"d":"d\u00e9v","s":"temp","v":1}"#[..],
        br#"{"d":"dev1","s":"temp","v":1,"x":[[1]]}"#,
    ] {
        let n = allocations(|| {
            black_box(decode(json, Format::Json).unwrap());
        });
        assert!(n <= 1, "{n} allocations for {}", String::from_utf8_lossy(json));
    }
}

#[test]
#[ignore = "a measurement: run in release with --ignored --nocapture"]
fn measure() {
    const N: u32 = 1_000_000;
    let payload = seed_cbor();
    assert_eq!(payload.len(), 35);
    let json = br#"{"d":"dev00001","s":"sen002","v":21.5,"u":"C","n":1000}"#;
    let proto = seed_proto();

    let time = |name: &str, f: &dyn Fn()| {
        for _ in 0..N / 10 {
            f();
        }
        let mut runs = Vec::new();
        let mut allocs = 0;
        for _ in 0..5 {
            let start = Instant::now();
            allocs = allocations(|| {
                for _ in 0..N {
                    f();
                }
            });
            runs.push(start.elapsed().as_nanos() as f64 / f64::from(N));
        }
        runs.sort_by(f64::total_cmp);
        println!(
            "decode {name:<36} median_ns={:.0} min_ns={:.0} max_ns={:.0} allocs_per_msg={:.1}",
            runs[2],
            runs[0],
            runs[4],
            allocs as f64 / f64::from(N)
        );
    };
    time("cbor (this crate)", &|| {
        black_box(decode(black_box(&payload), Format::Cbor).unwrap());
    });
    time("cbor parse only (this crate)", &|| {
        black_box(decoded::cbor::parse(black_box(&payload)).unwrap());
    });
    time("json (this crate, serde_json)", &|| {
        black_box(decode(black_box(json), Format::Json).unwrap());
    });
    time("protobuf (this crate)", &|| {
        black_box(decode(black_box(&proto), Format::Protobuf).unwrap());
    });
    time("protobuf parse only (this crate)", &|| {
        black_box(decoded::proto::parse(black_box(&proto)).unwrap());
    });
    time("cbor (ciborium from_reader, String)", &|| {
        let seed: Seed = ciborium::de::from_reader(black_box(&payload[..])).unwrap();
        black_box(seed);
    });
}
