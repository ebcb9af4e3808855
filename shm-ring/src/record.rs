//! What may travel through a ring.

/// A fixed-size record that can live in shared memory.
///
/// [`bytemuck::Pod`] is the proof that the type is plain data: `#[repr(C)]` (or transparent), no
/// padding, no pointers or references, and every bit pattern valid, so a record read from a
/// segment that another process wrote (or corrupted) is always a valid value. Derive it with
/// `#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]`.
///
/// `TYPE_NAME` is stored in the ring's header and compared on every attach, together with the
/// record's size and alignment. Put a version in it (`"RawRecord/1"`) and bump it whenever the
/// meaning of a field changes without its size changing. At most 64 bytes.
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Sample {
///     seq: u64,
///     value: f64,
/// }
///
/// impl shm_ring::Record for Sample {
///     const TYPE_NAME: &'static str = "Sample/1";
/// }
/// ```
pub trait Record: bytemuck::Pod + Send {
    /// The name stored in the ring header, with a version.
    const TYPE_NAME: &'static str;
}
