//! Protobuf wire-format framing of a `telemetry.v1.ReadingBatch`: the bytes of each `readings`
//! (field 1) entry, other fields skipped by their wire type.

use std::ops::Range;

use super::FramingError;

fn varint(body: &[u8], at: &mut usize) -> Result<u64, FramingError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *body.get(*at).ok_or(FramingError("protobuf varint truncated"))?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(FramingError("protobuf varint too long"))
}

pub(super) fn split_batch(body: &[u8], items: &mut Vec<Range<usize>>) -> Result<(), FramingError> {
    let past_end = FramingError("protobuf field runs past the end of the body");
    let mut at = 0;
    while at < body.len() {
        let key = varint(body, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        if field == 0 {
            return Err(FramingError("protobuf field number 0"));
        }
        match wire {
            0 => {
                varint(body, &mut at)?;
            }
            1 | 5 => {
                at += if wire == 1 { 8 } else { 4 };
                if at > body.len() {
                    return Err(past_end);
                }
            }
            2 => {
                let len = varint(body, &mut at)?;
                let end = usize::try_from(len)
                    .ok()
                    .and_then(|l| at.checked_add(l))
                    .ok_or(past_end.clone())?;
                if end > body.len() {
                    return Err(past_end);
                }
                if field == 1 {
                    items.push(at..end);
                }
                at = end;
            }
            _ => return Err(FramingError("protobuf wire type not allowed in a ReadingBatch")),
        }
        if field == 1 && wire != 2 {
            return Err(FramingError("ReadingBatch.readings (field 1) must be length-delimited"));
        }
    }
    Ok(())
}
