//! A read position in a borrowed payload: the byte-level half that the CBOR and protobuf
//! readers share. Every read is checked against the bytes left, so a declared length larger than
//! the payload is [`Reason::Malformed`] at once, never an out-of-bounds index or an allocation.

use crate::reason::Reason;

/// The unread rest of a payload; what it hands out borrows the payload, not the cursor.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    /// How many bytes are still unread.
    #[inline]
    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next byte; malformed if none is left.
    #[inline]
    pub(crate) fn byte(&mut self) -> Result<u8, Reason> {
        let byte = *self.buf.get(self.pos).ok_or(Reason::Malformed)?;
        self.pos += 1;
        Ok(byte)
    }

    /// The next `n` bytes; malformed if fewer are left.
    #[inline]
    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], Reason> {
        if n > self.left() as u64 {
            return Err(Reason::Malformed);
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }
}
