//! Short strings stored inline in records: a byte array and a length.

/// A string of at most `N` bytes, stored inline. Reading it back never fails: bytes that are not
/// UTF-8 (only a corrupt ring could hold them) come back replaced.
pub trait FixedText {
    /// The bytes in use.
    fn bytes(&self) -> &[u8];

    /// The text, with invalid UTF-8 replaced.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes())
    }
}

/// Copies `src` into `dst` and returns its length, or `None` if it does not fit.
pub(crate) fn store(dst: &mut [u8], src: &[u8]) -> Option<u8> {
    if src.len() > dst.len() || src.len() > u8::MAX as usize {
        return None;
    }
    dst[..src.len()].copy_from_slice(src);
    dst[src.len()..].fill(0);
    Some(src.len() as u8)
}

/// The first `len` bytes of `src`, clamped to its size (a corrupt length cannot overrun).
pub(crate) fn load(src: &[u8], len: u8) -> &[u8] {
    &src[..(len as usize).min(src.len())]
}
