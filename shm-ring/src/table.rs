//! A table: a fixed number of records in a segment that outlives the process writing it. For
//! state a stage must not lose when it restarts, such as aggd's windows.
//!
//! One process at a time holds the writer role (an OFD lock, as for rings), and only it sees the
//! rows, as a plain `&mut [T]`. There is no protocol between processes beyond that: a writer
//! killed in the middle of updating a row leaves that row half-updated, so a table's user must
//! keep rows meaningful after any prefix of its writes (for example by updating a row's
//! validity marker last), and document what a crash can cost.
//!
//! | offset | contents |
//! |---|---|
//! | 0 | header (kind = table, capacity = rows) |
//! | 128 | [`USER_WORDS`] `u64` words for the writer's own bookkeeping |
//! | 256 | rows |

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::layout::shape_of;
use crate::layout::{self, HeaderFields, KIND_TABLE, LINE, TABLE_ROWS_OFFSET};
use crate::record::Record;
use crate::segment::{Access, Created, IfExists, Mapping, Pages, SegmentName};

/// Number of user words in a table's second line.
pub const USER_WORDS: usize = LINE / 8;

/// Byte of the segment on which the writer holds its OFD lock.
const WRITER_LOCK_BYTE: u64 = 0;

/// Creates a table of `rows` zeroed records of type `T`. With [`IfExists::Adopt`], an existing
/// table of the same type and row count is kept with its contents; anything else in its place is
/// replaced (unless a live writer holds it: [`Error::RoleHeld`]).
///
/// ```
/// # use shm_ring::segment::{Created, IfExists, PrefixGuard};
/// # use shm_ring::table::{create_table, Table};
/// # use shm_ring::{Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Row { key: u64, total: u64 }
/// # impl Record for Row { const TYPE_NAME: &'static str = "Row/1"; }
/// let name = SegmentName::new(&format!("doc-table-{}", std::process::id()), "state")?;
/// let _guard = PrefixGuard::new(name.prefix());
/// create_table::<Row>(&name, 4, IfExists::Fail)?;
/// {
///     let mut table = Table::<Row>::attach(&name)?;
///     table.rows_mut()[2] = Row { key: 7, total: 40 };
///     table.set_user_word(0, 99);
/// } // the writer exits (or is killed)
/// assert_eq!(create_table::<Row>(&name, 4, IfExists::Adopt)?, Created::Adopted { depth: 0 });
/// let table = Table::<Row>::attach(&name)?;
/// assert_eq!((table.rows()[2].total, table.user_word(0)), (40, 99));
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn create_table<T: Record>(name: &SegmentName, rows: u64, if_exists: IfExists) -> Result<Created> {
    create_table_with::<T>(name, rows, if_exists, Pages::Reserved)
}

/// [`create_table`] with its pages allocated as `pages` says: [`Pages::OnFirstTouch`] for a
/// table sized for a worst case that is rarely reached.
///
/// ```
/// # use shm_ring::segment::{IfExists, Pages, PrefixGuard};
/// # use shm_ring::table::create_table_with;
/// # use shm_ring::{Record, SegmentName};
/// # #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)] #[repr(C)] struct Row { key: u64 }
/// # impl Record for Row { const TYPE_NAME: &'static str = "SparseRow/1"; }
/// let name = SegmentName::new(&format!("doc-sparse-{}", std::process::id()), "text")?;
/// let _guard = PrefixGuard::new(name.prefix());
/// create_table_with::<Row>(&name, 1 << 16, IfExists::Fail, Pages::OnFirstTouch)?;
/// # Ok::<(), shm_ring::Error>(())
/// ```
pub fn create_table_with<T: Record>(
    name: &SegmentName,
    rows: u64,
    if_exists: IfExists,
    pages: Pages,
) -> Result<Created> {
    let shape = shape_of::<T>()?;
    if rows == 0 || rows > layout::MAX_CAPACITY {
        return Err(Error::InvalidParameter {
            reason: format!("a table needs 1 to 2^32 rows, not {rows}"),
        });
    }
    let len = layout::table_bytes(shape.record_size, rows).ok_or_else(|| Error::InvalidParameter {
        reason: format!("{rows} rows of {} bytes do not fit in memory", shape.record_size),
    })?;
    let mut outcome = Created::New;
    let map = match Mapping::create_with(name, len, Access::OwnerOnly, pages) {
        Ok(m) => m,
        Err(Error::AlreadyExists { .. }) if if_exists != IfExists::Fail => {
            let reason = match Table::<T>::open(name) {
                Ok(existing) => {
                    if !existing.map.try_lock_byte(WRITER_LOCK_BYTE)? {
                        return Err(Error::RoleHeld {
                            segment: name.to_string(),
                            role: "table writer",
                            pid: 0,
                        });
                    }
                    if if_exists == IfExists::Adopt && existing.rows == rows {
                        return Ok(Created::Adopted { depth: 0 });
                    }
                    format!("{} rows where {rows} were asked for", existing.rows)
                }
                Err(e @ (Error::ForeignOwner { .. } | Error::Untrusted { .. } | Error::Os { .. })) => return Err(e),
                Err(e) => e.to_string(),
            };
            crate::segment::remove(name)?;
            outcome = Created::Replaced { reason };
            Mapping::create_with(name, len, Access::OwnerOnly, pages)?
        }
        Err(e) => return Err(e),
    };
    // SAFETY: the mapping is fresh, zero-filled, writable, at least one line long and not yet
    // published (its magic is 0), so nobody else reads the header while it is written.
    unsafe { layout::publish_header(map.ptr(), HeaderFields::new(KIND_TABLE, Some(shape), rows, len)) };
    Ok(outcome)
}

/// The writer's view of a table. Dropping it (or the process dying) releases the role.
pub struct Table<T: Record> {
    map: Mapping,
    rows: u64,
    _record: std::marker::PhantomData<T>,
}

impl<T: Record> Table<T> {
    fn open(name: &SegmentName) -> Result<Self> {
        let shape = shape_of::<T>()?;
        let map = Mapping::open(name, true)?;
        let seg = name.to_string();
        if map.len() < TABLE_ROWS_OFFSET {
            return Err(Error::corrupt(&seg, "shorter than a table header"));
        }
        // SAFETY: the mapping is at least TABLE_ROWS_OFFSET ≥ LINE bytes and page-aligned.
        let header = unsafe { layout::read_header(map.ptr()) };
        let rows = header
            .check_table(&shape, map.len())
            .map_err(|e| e.into_error(seg.clone(), |found| (found, shape.describe())))?;
        Ok(Table {
            map,
            rows,
            _record: std::marker::PhantomData,
        })
    }

    /// Takes the writer role of the table `name`, which must hold rows of type `T`.
    pub fn attach(name: &SegmentName) -> Result<Self> {
        let table = Self::open(name)?;
        if !table.map.try_lock_byte(WRITER_LOCK_BYTE)? {
            return Err(Error::RoleHeld {
                segment: name.to_string(),
                role: "table writer",
                pid: 0,
            });
        }
        Ok(table)
    }

    /// The rows.
    pub fn rows(&self) -> &[T] {
        // SAFETY: the header check proved `rows` records of T fit after TABLE_ROWS_OFFSET, which
        // is 128-aligned (align_of::<T>() ≤ 128); we hold the writer role, so no other process
        // writes them; T is Pod, so any bytes are valid.
        unsafe { std::slice::from_raw_parts(self.map.ptr().add(TABLE_ROWS_OFFSET) as *const T, self.rows as usize) }
    }

    /// The rows, for writing.
    pub fn rows_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `rows`; `&mut self` makes this the only reference into the rows.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr().add(TABLE_ROWS_OFFSET) as *mut T, self.rows as usize) }
    }

    fn user_words(&self) -> &[AtomicU64; USER_WORDS] {
        // SAFETY: the second line lies inside the checked mapping, is 128-aligned, and holds only
        // u64 words, for which AtomicU64 is a valid view.
        unsafe { &*(self.map.ptr().add(LINE) as *const [AtomicU64; USER_WORDS]) }
    }

    /// One of the writer's bookkeeping words (for example, how far it has consumed its input).
    pub fn user_word(&self, i: usize) -> u64 {
        self.user_words()[i].load(Ordering::Acquire)
    }

    /// Sets a bookkeeping word. Stored with `Release` after the row writes before it.
    pub fn set_user_word(&self, i: usize, value: u64) {
        self.user_words()[i].store(value, Ordering::Release);
    }

    /// Bytes of the whole segment, for memory accounting.
    pub fn segment_bytes(&self) -> usize {
        self.map.len()
    }
}
