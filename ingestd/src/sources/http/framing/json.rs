//! JSON (RFC 8259) framing: where each value of a body (or of its top-level array) ends, by
//! following strings and brackets only; scalars are not interpreted.

use std::ops::Range;

use super::{trim, FramingError, MAX_DEPTH};

pub(super) fn split(body: &[u8], items: &mut Vec<Range<usize>>) -> Result<(), FramingError> {
    let whole = trim(body, 0..body.len());
    if whole.is_empty() {
        return Err(FramingError("empty body"));
    }
    if body[whole.start] != b'[' {
        let end = skip_json(body, whole.start)?;
        if end != whole.end {
            return Err(FramingError("JSON with more after its value"));
        }
        items.push(whole);
        return Ok(());
    }
    let mut at = whole.start + 1;
    let mut first = true;
    loop {
        at = trim(body, at..whole.end).start;
        match body.get(at) {
            Some(b']') if first => {
                at += 1;
                break;
            }
            None => return Err(FramingError("JSON array not closed")),
            _ => {}
        }
        let end = skip_json(body, at)?;
        items.push(trim(body, at..end));
        at = trim(body, end..whole.end).start;
        match body.get(at) {
            Some(b',') => at += 1,
            Some(b']') => {
                at += 1;
                break;
            }
            _ => return Err(FramingError("JSON array elements must be separated by commas")),
        }
        first = false;
    }
    if at != whole.end {
        return Err(FramingError("JSON with more after its value"));
    }
    Ok(())
}

/// Where the JSON value starting at `at` ends: strings and brackets are followed (and must be
/// closed and matched); scalars run to the next delimiter. What the scalars hold is decoded's
/// business.
fn skip_json(body: &[u8], at: usize) -> Result<usize, FramingError> {
    // Open brackets as bits: 1 for '{', 0 for '['.
    let mut stack = 0u64;
    let mut depth = 0u32;
    let mut i = at;
    loop {
        let Some(&b) = body.get(i) else {
            return if depth == 0 && i > at {
                Ok(i)
            } else {
                Err(FramingError("JSON value not closed"))
            };
        };
        match b {
            b'"' => {
                i += 1;
                loop {
                    match body.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                        None => return Err(FramingError("JSON string not closed")),
                    }
                }
                i += 1;
            }
            b'{' | b'[' => {
                if depth == MAX_DEPTH {
                    return Err(FramingError("JSON nested too deeply"));
                }
                stack = stack << 1 | u64::from(b == b'{');
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                if depth == 0 {
                    return if i > at {
                        Ok(i)
                    } else {
                        Err(FramingError("JSON value expected"))
                    };
                }
                if (stack & 1 == 1) != (b == b'}') {
                    return Err(FramingError("JSON brackets do not match"));
                }
                stack >>= 1;
                depth -= 1;
                i += 1;
            }
            b',' if depth == 0 => {
                return if i > at {
                    Ok(i)
                } else {
                    Err(FramingError("JSON value expected"))
                };
            }
            _ => i += 1,
        }
        if depth == 0 && matches!(body.get(i - 1), Some(b'}' | b']' | b'"')) {
            return Ok(i);
        }
    }
}
