//! Tables: contents survive the writer, one writer at a time, and wrong or damaged segments are
//! refused.

use shm_ring::segment::{Created, IfExists, PrefixGuard};
use shm_ring::table::{create_table, Table, USER_WORDS};
use shm_ring::{Error, Record, SegmentName};

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Row {
    key: u64,
    total: u64,
}
impl Record for Row {
    const TYPE_NAME: &'static str = "Row/1";
}

#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct OtherRow(u64, u64);
impl Record for OtherRow {
    const TYPE_NAME: &'static str = "OtherRow/1";
}

fn scratch(test: &str) -> (PrefixGuard, SegmentName) {
    let prefix = format!("test-table-{test}-{}", std::process::id());
    (PrefixGuard::new(&prefix), SegmentName::new(&prefix, "state").unwrap())
}

#[test]
fn one_writer_at_a_time_and_rows_outlive_it() {
    let (_g, name) = scratch("writer");
    create_table::<Row>(&name, 3, IfExists::Fail).unwrap();
    let mut t = Table::<Row>::attach(&name).unwrap();
    assert!(matches!(Table::<Row>::attach(&name), Err(Error::RoleHeld { .. })));
    assert!(matches!(
        create_table::<Row>(&name, 3, IfExists::Replace),
        Err(Error::RoleHeld { .. })
    ));
    t.rows_mut()[1] = Row { key: 1, total: 2 };
    t.set_user_word(USER_WORDS - 1, 5);
    drop(t);
    let t = Table::<Row>::attach(&name).unwrap();
    assert_eq!(
        t.rows(),
        &[
            Row { key: 0, total: 0 },
            Row { key: 1, total: 2 },
            Row { key: 0, total: 0 }
        ]
    );
    assert_eq!(t.user_word(USER_WORDS - 1), 5);
}

#[test]
fn wrong_type_or_size_is_refused_or_replaced() {
    let (_g, name) = scratch("shape");
    create_table::<Row>(&name, 3, IfExists::Fail).unwrap();
    assert!(matches!(Table::<OtherRow>::attach(&name), Err(Error::Mismatch { .. })));
    assert!(matches!(
        create_table::<Row>(&name, 4, IfExists::Adopt).unwrap(),
        Created::Replaced { .. }
    ));
    assert_eq!(Table::<Row>::attach(&name).unwrap().rows().len(), 4);
    let path = name.path();
    std::fs::write(&path, vec![1u8; 300]).unwrap();
    assert!(matches!(Table::<Row>::attach(&name), Err(Error::Corrupt { .. })));
    assert!(create_table::<Row>(&name, 0, IfExists::Replace).is_err());
}
