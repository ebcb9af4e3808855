//! Payload encoding. CBOR is written by hand, byte for byte what ciborium writes for the map
//! `{d, s, v, u, n}` (floats in their shortest exact width, so 21.5 becomes a half float), into a
//! reused buffer: the generator must cost little CPU itself.

/// Appends a CBOR head (major type and argument) to `out`.
fn head(out: &mut Vec<u8>, major: u8, arg: u64) {
    let m = major << 5;
    match arg {
        0..=23 => out.push(m | arg as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, arg as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The half-precision bits of `v`, if `v` is exactly representable as an f16.
fn f16_bits(v: f64) -> Option<u16> {
    let f = v as f32;
    if f64::from(f) != v {
        return None;
    }
    let bits = f.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0 && mant == 0 {
        return Some(sign);
    }
    let e = exp - 127 + 15;
    // Normal f16 only (subnormals and specials take the wider encodings; all still exact).
    if (1..=30).contains(&e) && mant & 0x1fff == 0 {
        return Some(sign | ((e as u16) << 10) | (mant >> 13) as u16);
    }
    None
}

fn float(out: &mut Vec<u8>, v: f64) {
    if let Some(h) = f16_bits(v) {
        out.push(0xf9);
        out.extend_from_slice(&h.to_be_bytes());
    } else if f64::from(v as f32) == v {
        out.push(0xfa);
        out.extend_from_slice(&(v as f32).to_be_bytes());
    } else {
        out.push(0xfb);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Writes `{d: device, s: sensor, v: value, u: unit, n: seq}` as CBOR into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, device: &str, sensor: &str, value: f64, unit: &str, seq: u64) {
    out.clear();
    head(out, 5, 5);
    text(out, "d");
    text(out, device);
    text(out, "s");
    text(out, sensor);
    text(out, "v");
    float(out, value);
    text(out, "u");
    text(out, unit);
    text(out, "n");
    head(out, 0, seq);
}

/// Writes the same reading as a JSON object into `out` (cleared first). Ids are escaped.
pub fn encode_json(out: &mut Vec<u8>, device: &str, sensor: &str, value: f64, unit: &str, seq: u64) {
    use std::io::Write;
    out.clear();
    let _ = write!(
        out,
        "{{\"d\":{},\"s\":{},\"v\":{value:?},\"u\":{},\"n\":{seq}}}",
        json(device),
        json(sensor),
        json(unit)
    );
}

fn json(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A malformed payload for message `i`, rotating through truncated CBOR, bytes that are not
/// CBOR, and a CBOR text string where a map belongs (as the reference load generator does).
pub fn encode_bad(out: &mut Vec<u8>, i: u64) {
    out.clear();
    match i % 3 {
        0 => {
            encode(out, "dev00000", "sen000", 1.5, "C", i);
            out.truncate(out.len() / 2);
        }
        1 => out.extend_from_slice(&[0xff, 0xfe, 0x00, 0x1c]),
        _ => text(out, "not a reading"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct R {
        d: String,
        s: String,
        v: f64,
        u: String,
        n: u64,
    }

    #[test]
    fn the_bytes_are_ciboriums() {
        #[derive(serde::Serialize)]
        struct W<'a> {
            d: &'a str,
            s: &'a str,
            v: f64,
            u: &'a str,
            n: u64,
        }
        for (v, n) in [
            (21.5, 0u64),
            (301.6, 7),
            (0.1, 300),
            (-2.0, 70_000),
            (1e300, u64::MAX),
            (0.0, 24),
        ] {
            let mut ours = Vec::new();
            encode(&mut ours, "dev00001", "sen002", v, "hPa", n);
            let mut theirs = Vec::new();
            ciborium::into_writer(
                &W {
                    d: "dev00001",
                    s: "sen002",
                    v,
                    u: "hPa",
                    n,
                },
                &mut theirs,
            )
            .unwrap();
            assert_eq!(ours, theirs, "value {v}");
        }
    }

    #[test]
    fn json_round_trips_with_hostile_ids() {
        let mut out = Vec::new();
        encode_json(&mut out, "a\"b\\c\n", "s", 1.25, "C", 3);
        let r: R = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            r,
            R {
                d: "a\"b\\c\n".into(),
                s: "s".into(),
                v: 1.25,
                u: "C".into(),
                n: 3
            }
        );
    }

    #[test]
    fn bad_payloads_do_not_decode() {
        let mut out = Vec::new();
        for i in 0..3 {
            encode_bad(&mut out, i);
            assert!(ciborium::from_reader::<R, _>(&out[..]).is_err());
        }
    }
}
