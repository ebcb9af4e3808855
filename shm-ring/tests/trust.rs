//! Who may own what a pipeline finds in `/dev/shm`: a squatted prefix directory (a symlink, a
//! file, a directory writable by others, one of another user) is refused by name and never
//! followed; a segment a reader finds is believed only if it has its directory's owner and
//! nobody else can write either; a segment whose pages cannot be reserved is an error at
//! creation, and leaves nothing behind.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use shm_ring::ring::{create, RingObserver, RingOptions};
use shm_ring::segment::{prepare_dir, remove_all, remove_segments, PrefixGuard, SHM_DIR};
use shm_ring::stats::{create_stats_page, StatsReader};
use shm_ring::{Error, Producer, Record, SegmentName};

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Rec {
    seq: u64,
}
impl Record for Rec {
    const TYPE_NAME: &'static str = "TrustRec/1";
}

/// 64 KiB per record, so that a ring larger than all of `/dev/shm` has a legal capacity.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Big([u64; 8192]);
impl Record for Big {
    const TYPE_NAME: &'static str = "TrustBig/1";
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn scratch(test: &str) -> (PrefixGuard, SegmentName) {
    let prefix = format!(
        "test-trust-{test}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let name = SegmentName::new(&prefix, "ring").unwrap();
    (PrefixGuard::new(&prefix), name)
}

fn dir_of(name: &SegmentName) -> PathBuf {
    Path::new(SHM_DIR).join(name.prefix())
}

fn is_root() -> bool {
    nix::unistd::geteuid().as_raw() == 0
}

#[test]
fn segments_live_in_a_0750_directory_of_their_own_that_goes_with_the_guard() {
    let (guard, name) = scratch("layout");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    assert_eq!(name.path(), dir_of(&name).join("ring"));
    let meta = std::fs::symlink_metadata(dir_of(&name)).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o750);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    assert!(
        !prepare_dir(name.prefix()).unwrap(),
        "an existing directory is found, not made"
    );
    // remove_segments keeps the directory; the guard removes both.
    assert_eq!(remove_segments(name.prefix()).unwrap(), 1);
    assert!(dir_of(&name).is_dir());
    drop(guard);
    assert!(!dir_of(&name).exists());
}

#[test]
fn a_symlink_in_place_of_the_directory_is_refused_and_never_followed() {
    let (_g, name) = scratch("dir-symlink");
    let target = std::env::temp_dir().join(format!("shm-ring-trust-target-{}", std::process::id()));
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, dir_of(&name)).unwrap();
    let err = create::<Rec>(&name, &RingOptions::new(8)).unwrap_err();
    assert!(matches!(err, Error::Untrusted { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("refusing {}: it is a symbolic link", dir_of(&name).display())),
        "{text}"
    );
    assert!(text.contains("remove it"), "{text}");
    assert!(matches!(RingObserver::attach(&name), Err(Error::Untrusted { .. })));
    assert!(matches!(StatsReader::open(&name), Err(Error::Untrusted { .. })));
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing made through the link"
    );
    // Removal takes the link, not what it points to.
    remove_all(name.prefix()).unwrap();
    assert!(std::fs::symlink_metadata(dir_of(&name)).is_err());
    assert!(target.is_dir());
    std::fs::remove_dir(&target).unwrap();
}

#[test]
fn a_file_in_place_of_the_directory_is_refused() {
    let (_g, name) = scratch("dir-file");
    std::fs::write(dir_of(&name), b"squat").unwrap();
    let err = create::<Rec>(&name, &RingOptions::new(8)).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_directory_others_can_write_is_refused_for_writing_and_reading() {
    let (_g, name) = scratch("dir-mode");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    create_stats_page(&SegmentName::new(name.prefix(), "stats").unwrap(), &["a"], &[]).unwrap();
    std::fs::set_permissions(dir_of(&name), std::fs::Permissions::from_mode(0o777)).unwrap();
    for err in [
        create::<Rec>(&SegmentName::new(name.prefix(), "other").unwrap(), &RingOptions::new(8)).unwrap_err(),
        Producer::<Rec>::attach(&name).err().unwrap(),
        RingObserver::attach(&name).err().unwrap(),
        StatsReader::open(&SegmentName::new(name.prefix(), "stats").unwrap())
            .err()
            .unwrap(),
    ] {
        assert!(matches!(err, Error::Untrusted { .. }), "{err}");
        assert!(err.to_string().contains("writable by its group or by others"), "{err}");
        assert!(err.to_string().contains("mode 0777"), "{err}");
    }
}

#[test]
fn a_segment_others_can_write_or_a_symlink_is_refused() {
    let (_g, name) = scratch("file-mode");
    create::<Rec>(&name, &RingOptions::new(8)).unwrap();
    std::fs::set_permissions(name.path(), std::fs::Permissions::from_mode(0o666)).unwrap();
    for err in [
        Producer::<Rec>::attach(&name).err().unwrap(),
        RingObserver::attach(&name).err().unwrap(),
    ] {
        assert!(err.to_string().contains("writable by its group or by others"), "{err}");
    }
    let link = SegmentName::new(name.prefix(), "link").unwrap();
    std::os::unix::fs::symlink(name.path(), link.path()).unwrap();
    let err = RingObserver::attach(&link).err().unwrap();
    assert!(err.to_string().contains("is a symbolic link"), "{err}");
}

#[test]
fn a_directory_of_another_user_is_refused_naming_it_and_its_owner() {
    if !is_root() {
        eprintln!("skipped: needs root to give a directory to another uid (the mode and symlink cases run)");
        return;
    }
    let (_g, name) = scratch("dir-owner");
    std::fs::create_dir(dir_of(&name)).unwrap();
    std::fs::set_permissions(dir_of(&name), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(dir_of(&name), Some(65534), Some(65534)).unwrap();
    let err = create::<Rec>(&name, &RingOptions::new(8)).unwrap_err();
    assert!(
        matches!(&err, Error::ForeignOwner { segment, owner_uid: 65534, .. } if *segment == dir_of(&name).display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("remove it as root or as its owner"), "{err}");
    assert!(!name.path().exists(), "nothing created in it");

    // A page that is not its directory's owner's is not believed by a reader either.
    let (_g2, page) = scratch("page-owner");
    create_stats_page(&SegmentName::new(page.prefix(), "stats").unwrap(), &["a"], &[]).unwrap();
    std::os::unix::fs::chown(dir_of(&page), Some(65534), None).unwrap();
    let err = StatsReader::open(&SegmentName::new(page.prefix(), "stats").unwrap())
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("is not owned by its directory's owner (uid 65534)"),
        "{err}"
    );
    // The same owner for both: the reader opens it and reports whose it is.
    std::os::unix::fs::chown(dir_of(&page).join("stats"), Some(65534), None).unwrap();
    let reader = StatsReader::open(&SegmentName::new(page.prefix(), "stats").unwrap()).unwrap();
    assert_eq!(reader.owner_uid(), 65534);
}

#[test]
fn a_truncated_stats_page_is_refused_not_a_sigbus() {
    let (_g, name) = scratch("truncated");
    let page = SegmentName::new(name.prefix(), "stats").unwrap();
    create_stats_page(&page, &["a"], &[]).unwrap();
    let full = std::fs::metadata(page.path()).unwrap().len();
    for len in [64, 4096, full - 4096] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(page.path())
            .unwrap()
            .set_len(len)
            .unwrap();
        let err = StatsReader::open(&page).err().unwrap();
        assert!(matches!(err, Error::Corrupt { .. }), "{len} bytes: {err}");
    }
}

#[test]
fn a_segment_larger_than_dev_shm_is_no_space_at_creation_and_leaves_nothing() {
    let fs = nix::sys::statvfs::statvfs(SHM_DIR).unwrap();
    let total = fs.blocks() as u64 * fs.fragment_size() as u64;
    if total == 0 {
        // An unlimited tmpfs would try to allocate it page by page: not a test to run.
        eprintln!("skipped: /dev/shm has no size limit");
        return;
    }
    let (_g, name) = scratch("nospace");
    let record = std::mem::size_of::<Big>() as u64;
    // More than the whole file system: the kernel refuses it before allocating a page.
    let cap = (total / record + 1).next_power_of_two() * 2;
    let err = create::<Big>(&name, &RingOptions::new(cap)).unwrap_err();
    let Error::NoSpace { segment, bytes, .. } = &err else {
        panic!("expected NoSpace, got {err}");
    };
    assert_eq!(*segment, name.to_string());
    assert!(*bytes > total, "{bytes} > {total}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("no room for shared memory segment {name} ({bytes} bytes")),
        "{text}"
    );
    assert!(!name.path().exists(), "the half-made segment was removed");
    eprintln!("{text}");
}

#[test]
fn a_table_asked_to_allocate_on_first_touch_is_sparse() {
    let (_g, name) = scratch("sparse");
    shm_ring::table::create_table_with::<Rec>(
        &name,
        1 << 16,
        shm_ring::segment::IfExists::Fail,
        shm_ring::segment::Pages::OnFirstTouch,
    )
    .unwrap();
    let meta = std::fs::metadata(name.path()).unwrap();
    // Only the header's page was written.
    assert!(
        meta.blocks() * 512 < meta.len() / 4,
        "{} allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
    let reserved = SegmentName::new(name.prefix(), "reserved").unwrap();
    shm_ring::table::create_table::<Rec>(&reserved, 1 << 16, shm_ring::segment::IfExists::Fail).unwrap();
    let meta = std::fs::metadata(reserved.path()).unwrap();
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
}

#[test]
fn created_segments_have_every_page_reserved() {
    let (_g, name) = scratch("reserved");
    create::<Rec>(&name, &RingOptions::new(1 << 16)).unwrap();
    let meta = std::fs::metadata(name.path()).unwrap();
    // st_blocks counts 512-byte units actually allocated: all of it, not a sparse file.
    assert!(
        meta.blocks() * 512 >= meta.len(),
        "{} allocated of {}",
        meta.blocks() * 512,
        meta.len()
    );
}
