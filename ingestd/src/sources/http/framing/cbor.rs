//! CBOR (RFC 8949) framing: where each item of a body ends, read from the items' heads only
//! (lengths, indefinite lengths, tags), never their values.

use std::ops::Range;

use super::{FramingError, MAX_DEPTH};

pub(super) fn split(body: &[u8], items: &mut Vec<Range<usize>>) -> Result<(), FramingError> {
    let mut at = 0;
    while at < body.len() {
        if body[at] >> 5 == 4 {
            // A top-level array: its elements are the readings.
            let (count, mut next) = head(body, at)?;
            match count {
                Some(n) => {
                    for _ in 0..n {
                        let end = skip_cbor(body, next, 1)?;
                        items.push(next..end);
                        next = end;
                    }
                }
                None => loop {
                    if *body.get(next).ok_or(FramingError("CBOR array not closed"))? == 0xff {
                        next += 1;
                        break;
                    }
                    let end = skip_cbor(body, next, 1)?;
                    items.push(next..end);
                    next = end;
                },
            }
            at = next;
        } else {
            let end = skip_cbor(body, at, 0)?;
            items.push(at..end);
            at = end;
        }
    }
    Ok(())
}

/// The item head at `at`: its argument (`None` for indefinite length) and where its content starts.
fn head(body: &[u8], at: usize) -> Result<(Option<u64>, usize), FramingError> {
    let truncated = FramingError("CBOR item truncated");
    let initial = *body.get(at).ok_or(truncated.clone())?;
    let info = initial & 0x1f;
    let n = match info {
        0..=23 => return Ok((Some(u64::from(info)), at + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        31 if matches!(initial >> 5, 2..=5) => return Ok((None, at + 1)),
        _ => return Err(FramingError("CBOR item with a reserved or misplaced length")),
    };
    let bytes = body.get(at + 1..at + 1 + n).ok_or(truncated)?;
    let mut arg = 0u64;
    for &b in bytes {
        arg = arg << 8 | u64::from(b);
    }
    Ok((Some(arg), at + 1 + n))
}

/// Where the CBOR item starting at `at` ends.
fn skip_cbor(body: &[u8], at: usize, depth: u32) -> Result<usize, FramingError> {
    if depth > MAX_DEPTH {
        return Err(FramingError("CBOR nested too deeply"));
    }
    let major = *body.get(at).ok_or(FramingError("CBOR item truncated"))? >> 5;
    let (arg, mut next) = head(body, at)?;
    let past_end = FramingError("CBOR item runs past the end of the body");
    match (major, arg) {
        (0 | 1 | 7, _) => Ok(next),
        (2 | 3, Some(len)) => {
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| next.checked_add(l))
                .ok_or(past_end.clone())?;
            if end > body.len() {
                return Err(past_end);
            }
            Ok(end)
        }
        (2 | 3, None) => loop {
            match body.get(next) {
                Some(0xff) => return Ok(next + 1),
                Some(b) if b >> 5 == major && b & 0x1f != 31 => next = skip_cbor(body, next, depth + 1)?,
                Some(_) => return Err(FramingError("CBOR string chunk of the wrong type")),
                None => return Err(past_end),
            }
        },
        (4 | 5, Some(n)) => {
            let items = if major == 5 { n.checked_mul(2) } else { Some(n) };
            let items = items.ok_or(past_end.clone())?;
            // Each item takes at least a byte: a count past the body's end is refused at once.
            if items > (body.len() - next) as u64 {
                return Err(past_end);
            }
            for _ in 0..items {
                next = skip_cbor(body, next, depth + 1)?;
            }
            Ok(next)
        }
        (4 | 5, None) => {
            let mut count = 0u64;
            loop {
                match body.get(next) {
                    Some(0xff) if major == 4 || count.is_multiple_of(2) => return Ok(next + 1),
                    Some(0xff) => return Err(FramingError("CBOR map with a key but no value")),
                    Some(_) => next = skip_cbor(body, next, depth + 1)?,
                    None => return Err(past_end),
                }
                count += 1;
            }
        }
        (6, _) => skip_cbor(body, next, depth + 1),
        _ => unreachable!("a major type has three bits"),
    }
}
