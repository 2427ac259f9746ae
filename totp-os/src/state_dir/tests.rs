use super::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use totp_core::state::{EARLIEST_CLOCK, Missing, Reset};

use crate::testutil::private_tempdir;

/// The clock a reset is run at: marks are kept up to a minute after it.
const NOW: u64 = 1_700_000_000;

fn store() -> (tempfile::TempDir, StateDir) {
    let t = private_tempdir();
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let s = StateDir::new(t.path().join("a/state"), Duration::from_millis(300));
    (t, s)
}

fn st(until: u64) -> UserState {
    UserState {
        extra: vec![1, 0, 0],
        ..UserState::default()
    }
    .with_marks(
        totp_core::state::EnrolmentId(1),
        totp_core::state::Marks {
            totp_until: Some(until),
            ..Default::default()
        },
    )
}

fn put(s: &mut StateDir, uid: Uid, w: Write) {
    s.update(uid, &mut |_| w.clone()).unwrap();
}

#[test]
fn missing_directory_is_created_private_and_records_round_trip() {
    let (t, mut s) = store();
    assert_eq!(s.read(1000).unwrap(), UserState::default());
    assert_eq!(s.reset(1000, NOW, false).unwrap(), Reset::Absent);
    assert!(
        !t.path().join("a").exists(),
        "reading and resetting create nothing"
    );
    put(&mut s, 1000, Write::Durable(st(5)));
    assert_eq!(s.read(1000).unwrap(), st(5));
    let m = std::fs::metadata(t.path().join("a/state")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o700);
    let f = std::fs::metadata(t.path().join("a/state/1000")).unwrap();
    assert_eq!(f.mode() & 0o7777, 0o600);
    assert!(f.len() <= MAX_FILE_LEN as u64);
    let mut seen = None;
    s.update(1000, &mut |cur| {
        seen = Some(cur.clone());
        Write::Nothing
    })
    .unwrap();
    assert_eq!(seen, Some(st(5)));
    // A reset clears the throttling and keeps the replay mark (R34).
    assert_eq!(
        s.reset(1000, NOW, false).unwrap(),
        Reset::Lifted { lowered: false }
    );
    let kept = s.read(1000).unwrap();
    assert!(kept.extra.is_empty(), "{kept:?}");
    assert_eq!(kept.marks, st(5).marks);
    assert_eq!(s.reset(4711, NOW, false).unwrap(), Reset::Absent);
    assert!(!t.path().join("a/state/4711").exists());
}

/// A mark far ahead of the clock (a clock fault) comes down to the cap a reset at
/// `NOW` keeps, which still covers every step up to `NOW`; the throttling goes.
#[test]
fn a_reset_lowers_only_a_mark_ahead_of_the_clock() {
    let (_t, mut s) = store();
    put(&mut s, 21, Write::Durable(st(4_102_444_800)));
    assert_eq!(
        s.reset(21, NOW, false).unwrap(),
        Reset::Lifted { lowered: true }
    );
    let cap = totp_core::state::reset_mark_cap(NOW);
    let after = s.read(21).unwrap();
    assert_eq!(after.latest().and_then(|m| m.totp_until), cap);
    assert!(after.extra.is_empty());
    // Nothing left to change: nothing written, the same record read back.
    assert_eq!(
        s.reset(21, NOW, false).unwrap(),
        Reset::Lifted { lowered: false }
    );
    assert_eq!(s.read(21).unwrap(), after);
}

#[test]
fn a_lazy_write_never_overwrites_the_latest_durable_record() {
    let (t, mut s) = store();
    put(&mut s, 7, Write::Durable(st(10)));
    for i in 0..5 {
        put(&mut s, 7, Write::Lazy(st(10 + i)));
    }
    put(&mut s, 7, Write::Durable(st(20)));
    put(&mut s, 7, Write::Lazy(st(21)));
    put(&mut s, 7, Write::Lazy(st(22)));
    assert_eq!(s.read(7).unwrap(), st(22));
    // A power loss that keeps only what was fsynced: drop the lazy slots.
    let path = t.path().join("a/state/7");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(2 * SLOT_LEN);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(s.read(7).unwrap(), st(20));
}

#[test]
fn a_torn_slot_falls_back_to_the_previous_record() {
    let (t, mut s) = store();
    put(&mut s, 8, Write::Durable(st(1)));
    put(&mut s, 8, Write::Durable(st(2)));
    let path = t.path().join("a/state/8");
    let mut bytes = std::fs::read(&path).unwrap();
    // Slot 1 holds the newest record; tear it.
    bytes[SLOT_LEN + HEADER_LEN] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(s.read(8).unwrap(), st(1));
}

/// Slot 1 of `bytes` rewritten with its payload's version byte set to `version` and a
/// checksum that passes: a complete record, as a release with that format writes it.
fn reversioned_slot_1(bytes: &[u8], version: u8) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let slot = &mut out[SLOT_LEN..2 * SLOT_LEN];
    let seq = u64::from_le_bytes(slot[4..12].try_into().unwrap());
    let len = u32::from_le_bytes(slot[12..16].try_into().unwrap()) as usize;
    slot[HEADER_LEN] = version;
    let d = digest(seq, &slot[HEADER_LEN..HEADER_LEN + len]);
    slot[16..32].copy_from_slice(&d);
    out
}

#[test]
fn a_complete_newest_slot_of_an_unknown_version_is_refused_not_skipped() {
    let (t, mut s) = store();
    put(&mut s, 10, Write::Durable(st(1)));
    put(&mut s, 10, Write::Durable(st(2)));
    let path = t.path().join("a/state/10");
    let good = std::fs::read(&path).unwrap();
    // Control: the same rewrite keeping the version reads the newest record.
    std::fs::write(
        &path,
        reversioned_slot_1(&good, good[SLOT_LEN + HEADER_LEN]),
    )
    .unwrap();
    assert_eq!(s.read(10).unwrap(), st(2));
    // A newer release's record in the newest slot: slot 0 (mark 1) is not read instead.
    std::fs::write(&path, reversioned_slot_1(&good, 0x7f)).unwrap();
    let r = s.read(10);
    assert!(
        matches!(&r, Err(StoreError::Corrupt(m)) if m.contains("newer release")),
        "{r:?}"
    );
    let r = s.update(10, &mut |_| Write::Durable(st(3)));
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        reversioned_slot_1(&good, 0x7f)
    );
    // A reset says the record was unusable, and keeps the marks of the slot it reads.
    let r = s.reset(10, NOW, false).unwrap();
    assert!(
        matches!(&r, Reset::Removed(m) if m.contains("are kept")),
        "{r:?}"
    );
    // Its TOTP mark raised to the reset's clock: what the newer release used before
    // then stays used.
    let after = s.read(10).unwrap();
    assert_eq!(after.marks, st(reset_mark_cap(NOW).unwrap()).marks);
    assert!(after.extra.is_empty(), "throttling lifted: {after:?}");
    // The same slot as the older one: the newest (slot 0 rewritten) wins as before.
    put(&mut s, 11, Write::Durable(st(1)));
    put(&mut s, 11, Write::Durable(st(2)));
    put(&mut s, 11, Write::Durable(st(3)));
    let path = t.path().join("a/state/11");
    let three = std::fs::read(&path).unwrap();
    std::fs::write(&path, reversioned_slot_1(&three, 0x7f)).unwrap();
    assert_eq!(s.read(11).unwrap(), st(3));
}

/// The reset of a record whose newest slot a newer release wrote goes over that slot,
/// never over the older one whose marks it keeps: a crash that tears the reset's write
/// leaves the older slot readable, and no marks are lost. Control: the reset's write
/// intact reads as the lifted record.
#[test]
fn a_reset_over_a_newer_release_slot_torn_by_a_crash_leaves_the_kept_marks() {
    let (t, mut s) = store();
    put(&mut s, 12, Write::Durable(st(1)));
    put(&mut s, 12, Write::Durable(st(2)));
    let path = t.path().join("a/state/12");
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, reversioned_slot_1(&good, 0x7f)).unwrap();
    assert!(matches!(
        s.reset(12, NOW, false).unwrap(),
        Reset::Removed(_)
    ));
    let after = std::fs::read(&path).unwrap();
    // Control: the reset's write as it landed.
    let lifted = s.read(12).unwrap();
    assert_eq!(lifted.marks, st(reset_mark_cap(NOW).unwrap()).marks);
    assert!(lifted.extra.is_empty(), "{lifted:?}");
    // The slot the reset wrote is the newest: tear it (one payload byte never landed).
    let newest = (0..SLOTS)
        .filter_map(|i| parse_slot(i, &after))
        .max_by_key(|(slot, _)| slot.seq)
        .map(|(slot, _)| slot.index)
        .unwrap();
    let mut torn = after.clone();
    torn[newest * SLOT_LEN + HEADER_LEN] ^= 0xff;
    std::fs::write(&path, &torn).unwrap();
    let r = s.read(12);
    assert!(
        matches!(&r, Ok(state) if state.marks == st(1).marks),
        "the kept slot is still there: {r:?}"
    );
}

#[test]
fn corrupt_truncated_and_huge_records_are_refused() {
    let (t, mut s) = store();
    put(&mut s, 9, Write::Durable(st(1)));
    let path = t.path().join("a/state/9");
    let good = std::fs::read(&path).unwrap();
    for bad in [
        good[..20].to_vec(),
        vec![0x55; 100],
        vec![0; MAX_FILE_LEN + 1],
    ] {
        std::fs::write(&path, &bad).unwrap();
        let r = s.update(9, &mut |_| Write::Nothing);
        assert!(
            matches!(r, Err(StoreError::Corrupt(_))),
            "{} bytes: {r:?}",
            bad.len()
        );
        assert!(matches!(s.read(9), Err(StoreError::Corrupt(_))));
    }
    assert!(matches!(s.reset(9, NOW, false).unwrap(), Reset::Removed(_)));
    assert_eq!(s.read(9).unwrap(), UserState::default());
}

#[test]
fn hostile_entries_are_never_followed_and_reset_removes_them() {
    let (t, mut s) = store();
    put(&mut s, 1, Write::Nothing);
    let dir = t.path().join("a/state");
    let target = t.path().join("target");
    std::fs::write(&target, b"x").unwrap();
    symlink(&target, dir.join("11")).unwrap();
    nix::unistd::mkfifo(&dir.join("12"), Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(dir.join("13"), b"").unwrap();
    std::os::unix::fs::chown(dir.join("13"), Some(4242), None).unwrap();
    std::fs::write(dir.join("14"), b"").unwrap();
    std::fs::set_permissions(dir.join("14"), std::fs::Permissions::from_mode(0o644)).unwrap();
    for uid in [11, 12, 13, 14] {
        let r = s.update(uid, &mut |_| Write::Durable(st(1)));
        assert!(matches!(r, Err(StoreError::Corrupt(_))), "{uid}: {r:?}");
        if uid == 12 {
            // Refused from its lstat, before any open (opening a device or FIFO can
            // have effects of its own).
            assert!(
                matches!(r, Err(StoreError::Corrupt(ref m)) if m.ends_with("is a FIFO; not followed")),
                "{r:?}"
            );
        }
        let removed = s.reset(uid, NOW, false).unwrap();
        assert!(matches!(removed, Reset::Removed(_)), "{uid}: {removed:?}");
        put(&mut s, uid, Write::Durable(st(3)));
        assert_eq!(s.read(uid).unwrap(), st(3));
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"x");
}

#[test]
fn an_unsafe_directory_is_refused() {
    let t = private_tempdir();
    let d = t.path().join("open");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut s = StateDir::new(&d, Duration::from_millis(100));
    assert!(matches!(s.read(1), Err(StoreError::Refused(_))));
    // Below a sticky directory anyone can write (like /tmp): anyone could create the
    // state directory first, so the store refuses it before creating anything.
    // (Not called "sticky": the message names the directory.)
    let sticky = t.path().join("shared");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let mut s = StateDir::new(sticky.join("state"), Duration::from_millis(100));
    match s.update(1, &mut |_| Write::Lazy(st(1))) {
        Err(StoreError::Refused(m)) => assert!(m.contains("mode 1777, sticky"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(!sticky.join("state").exists(), "nothing created below it");
    // Control: the same below a directory only its owner can write.
    let mut s = StateDir::new(t.path().join("closed/state"), Duration::from_millis(100));
    assert!(s.update(1, &mut |_| Write::Lazy(st(1))).is_ok());
    let link = t.path().join("link");
    symlink(t.path(), &link).unwrap();
    let mut s = StateDir::new(link.join("x"), Duration::from_millis(100));
    assert!(matches!(s.read(1), Err(StoreError::Refused(_))));
}

#[test]
fn the_lock_wait_is_bounded() {
    let (_t, mut s) = store();
    put(&mut s, 5, Write::Nothing);
    let (holder, _) = s.open_record(5, true, true).unwrap().unwrap();
    holder.lock().unwrap();
    // The lock is never released: an answer at all shows the wait ended.
    let r = s.update(5, &mut |_| Write::Nothing);
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    // Control: once the holder lets go, the same update succeeds.
    drop(holder);
    let r = s.update(5, &mut |_| Write::Nothing);
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn record_names_are_canonical_uids() {
    use std::ffi::OsStr;
    assert_eq!(record_uid(OsStr::new("1000")), Some(1000));
    assert_eq!(record_uid(OsStr::new("0")), Some(0));
    for bad in ["", "01", "x", "1000.tmp", "99999999999"] {
        assert_eq!(record_uid(OsStr::new(bad)), None, "{bad}");
    }
}

#[test]
fn the_store_key_is_created_once_and_checked_like_a_record() {
    let (t, mut s) = store();
    let k = s
        .context(Missing::Create { complete_since: 0 })
        .unwrap()
        .unwrap()
        .key;
    let path = t.path().join("a/state").join(KEY_FILE);
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!(m.len(), STORE_KEY_LEN as u64);
    assert_eq!(std::fs::read(&path).unwrap(), k.as_bytes());
    // The same key for every later login (another store object, another process).
    let mut again = StateDir::new(t.path().join("a/state"), Duration::from_millis(300));
    assert_eq!(
        again
            .context(Missing::Create { complete_since: 0 })
            .map(|c| c.map(|c| c.key))
            .unwrap(),
        Some(k.clone())
    );
    // Nothing but the key is left behind (no temporary file).
    let names: Vec<_> = std::fs::read_dir(t.path().join("a/state"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)]);
    // Not a uid: never taken for a record.
    assert_eq!(record_uid(std::ffi::OsStr::new(KEY_FILE)), None);

    // A key of the wrong size, a wider mode or a symlink is refused, never replaced.
    std::fs::write(&path, [1u8; 31]).unwrap();
    assert!(matches!(
        again
            .context(Missing::Create { complete_since: 0 })
            .map(|c| c.map(|c| c.key)),
        Err(StoreError::Corrupt(_))
    ));
    std::fs::write(&path, [1u8; STORE_KEY_LEN]).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        again
            .context(Missing::Create { complete_since: 0 })
            .map(|c| c.map(|c| c.key)),
        Err(StoreError::Corrupt(_))
    ));
    std::fs::remove_file(&path).unwrap();
    symlink(t.path().join("elsewhere"), &path).unwrap();
    assert!(matches!(
        again
            .context(Missing::Create { complete_since: 0 })
            .map(|c| c.map(|c| c.key)),
        Err(StoreError::Corrupt(_))
    ));
    assert!(!t.path().join("elsewhere").exists(), "not followed");
    // Removed, a new (different) key is made.
    std::fs::remove_file(&path).unwrap();
    assert_ne!(
        again
            .context(Missing::Create { complete_since: 0 })
            .map(|c| c.map(|c| c.key))
            .unwrap(),
        Some(k)
    );
    // A probe creates nothing.
    std::fs::remove_file(&path).unwrap();
    assert_eq!(again.context(Missing::Leave).unwrap(), None);
    assert!(!path.exists());
}

#[test]
fn racing_logins_agree_on_one_store_key() {
    let (t, _) = store();
    let dir = t.path().join("a/state");
    let keys: Vec<StoreKey> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let dir = dir.clone();
                sc.spawn(move || {
                    StateDir::new(dir, Duration::from_millis(300))
                        .context(Missing::Create { complete_since: 0 })
                        .unwrap()
                        .unwrap()
                        .key
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| *k == keys[0]));
}

/// The `openat2` fast path accepts exactly what the component walk accepts: every
/// directory below is tried both ways.
#[test]
fn the_fast_open_accepts_only_what_the_walk_accepts() {
    let t = private_tempdir();
    let comps = |p: &Path| -> Vec<OsString> {
        p.components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                _ => None,
            })
            .collect()
    };
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let good = t.path().join("good/state");
    std::fs::create_dir_all(&good).unwrap();
    mode(&good, 0o700);
    let writable = t.path().join("writable/state");
    std::fs::create_dir_all(&writable).unwrap();
    mode(&t.path().join("writable"), 0o775);
    let foreign = t.path().join("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::os::unix::fs::chown(&foreign, Some(4242), None).unwrap();
    std::fs::create_dir_all(t.path().join("real/state")).unwrap();
    symlink(t.path().join("real"), t.path().join("link")).unwrap();
    let linked = t.path().join("link/state");
    let missing = t.path().join("missing/state");
    for (dir, accepted) in [
        (&good, true),
        (&writable, false),
        (&foreign, false),
        (&linked, false),
        (&missing, false),
    ] {
        let s = StateDir::new(dir, Duration::from_millis(100));
        let fast = s.open_dir_fast(&comps(dir)).is_some();
        let walked = matches!(s.open_dir(false), Ok(Some(_)));
        assert_eq!(fast, accepted, "fast path for {}", dir.display());
        assert_eq!(walked, accepted, "walk for {}", dir.display());
    }
}

/// The descriptors of this process open on `path`.
fn open_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

/// R12/R16: a record removed while a login waits for its lock (the login opened it by
/// its name first) is not where that login's mark goes: after the lock it finds that
/// the name no longer leads to the file it locked, opens again (creating a new record)
/// and writes there, so the next login reads the mark. Control: without the removal,
/// the same waiting login writes into the file it first opened.
#[test]
fn a_record_removed_while_its_lock_is_awaited_is_opened_again() {
    for remove in [true, false] {
        let (t, mut s) = store();
        put(&mut s, 7, Write::Durable(st(1)));
        let path = t.path().join("a/state/7");
        let old_ino = std::fs::metadata(&path).unwrap().ino();
        let (holder, _) = s.open_record(7, false, true).unwrap().unwrap();
        holder.lock().unwrap();
        let dir = t.path().join("a/state");
        let waiter = std::thread::spawn(move || {
            let mut s = StateDir::new(dir, Duration::from_secs(20));
            s.update(7, &mut |_| Write::Durable(st(9)))
        });
        // The waiter has opened the record by its name once it has a descriptor on it.
        let start = Instant::now();
        while open_on(&path) < 2 {
            assert!(start.elapsed() < Duration::from_secs(20), "never opened");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Kept open to the end: a freed inode's number may be given to the next new
        // file at once (ext4), which would make the new record look like the old one.
        let _old = File::open(&path).unwrap();
        if remove {
            std::fs::remove_file(&path).unwrap();
        }
        drop(holder);
        waiter.join().unwrap().unwrap();
        let new_ino = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(new_ino != old_ino, remove, "remove={remove}");
        assert_eq!(
            s.read(7).unwrap(),
            st(9),
            "remove={remove}: the mark is in the record the name leads to"
        );
    }
}

/// A file system without `O_TMPFILE` (the open failed by injection): the new record is
/// built under a temporary name and placed complete, with one link, its blocks
/// allocated, and no temporary name left. Control: with `O_TMPFILE`, the same.
#[test]
fn a_new_record_is_placed_complete_with_or_without_o_tmpfile() {
    for without in [true, false] {
        let (t, mut s) = store();
        if without {
            fault::fail_next(FaultPoint::CreateUnnamed, libc::EOPNOTSUPP);
        }
        put(&mut s, 8, Write::Durable(st(3)));
        assert!(
            !fault::pending(FaultPoint::CreateUnnamed),
            "the fault was reached"
        );
        fault::clear();
        let m = std::fs::metadata(t.path().join("a/state/8")).unwrap();
        assert_eq!(m.nlink(), 1, "without={without}");
        assert_eq!(m.mode() & 0o7777, 0o600, "without={without}");
        assert!(
            m.blocks() * 512 >= MAX_FILE_LEN as u64,
            "without={without}: allocated"
        );
        let names: Vec<_> = std::fs::read_dir(t.path().join("a/state"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| n == "8" || n == KEY_FILE),
            "without={without}: {names:?}"
        );
        assert_eq!(s.read(8).unwrap(), st(3));
    }
}

/// A new record placed by the fallback of a refused `renameat2` (a seccomp filter's
/// EPERM, by injection) has two links between its `linkat` and the unlink of its
/// temporary name. A reset run at that moment leaves it alone (`Unavailable`: being
/// created), and the record the login then writes its mark into is that same file,
/// kept by a later reset. Control: a second link made by hand, with no temporary name
/// beside it, is still a hostile entry the reset removes.
#[test]
fn a_reset_leaves_a_record_being_placed_with_two_links_alone() {
    use std::cell::RefCell;
    use std::rc::Rc;

    let (t, mut s) = store();
    let dir = t.path().join("a/state");
    // The directory and the key exist before the record's creation.
    put(&mut s, 1, Write::Nothing);
    // The reset's result, and the record's inode and links, at the moment it ran.
    type Seen = Option<(Result<Reset, StoreError>, u64, u64)>;
    let seen: Rc<RefCell<Seen>> = Rc::default();
    let at_two_links = Rc::clone(&seen);
    let in_hook = dir.clone();
    fault::fail_next(FaultPoint::CreateUnnamed, libc::EOPNOTSUPP);
    fault::fail_next(FaultPoint::RecordRename, libc::EPERM);
    fault::run_at(FaultPoint::RecordTwoLinks, move || {
        let m = std::fs::metadata(in_hook.join("21")).unwrap();
        let mut other = StateDir::new(&in_hook, Duration::from_millis(300));
        let r = other.reset(21, NOW, false);
        *at_two_links.borrow_mut() = Some((r, m.ino(), m.nlink()));
    });
    put(&mut s, 21, Write::Durable(st(3)));
    for point in [
        FaultPoint::CreateUnnamed,
        FaultPoint::RecordRename,
        FaultPoint::RecordTwoLinks,
    ] {
        assert!(!fault::pending(point), "{point:?} was reached");
    }
    fault::clear();
    let (r, ino, nlink) = seen.borrow_mut().take().expect("the reset ran");
    assert_eq!(nlink, 2, "the reset ran while the record had two links");
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
    let m = std::fs::metadata(dir.join("21")).unwrap();
    assert_eq!((m.ino(), m.nlink()), (ino, 1), "the same record, one link");
    assert_eq!(s.read(21).unwrap(), st(3), "the mark is in it");
    assert!(matches!(s.reset(21, NOW, false), Ok(Reset::Lifted { .. })));
    let id = totp_core::state::EnrolmentId(1);
    assert_eq!(
        s.read(21).unwrap().marks_of(id),
        st(3).marks_of(id),
        "the reset kept the mark"
    );

    // Control: a genuine second link, no temporary name beside it.
    put(&mut s, 22, Write::Durable(st(3)));
    std::fs::hard_link(dir.join("22"), t.path().join("a/extra")).unwrap();
    match s.reset(22, NOW, false) {
        Ok(Reset::Removed(why)) => assert!(why.contains("hard links"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(!dir.join("22").exists(), "the hostile entry was removed");
}

/// The reset of a record a newer release wrote last cannot read that release's marks,
/// but no TOTP code it accepted is of a step after the reset's clock (plus the slack):
/// every kept enrolment's TOTP mark is raised to there, one without a TOTP mark (only
/// scratch codes used) too, and a later mark is kept. Control: the reset of a record
/// this release reads keeps an earlier mark as it is. Without a clock to trust the
/// reset is refused and the record left as it was.
#[test]
fn a_reset_over_a_newer_release_slot_counts_every_totp_code_up_to_now_as_used() {
    let (t, mut s) = store();
    let cap = reset_mark_cap(NOW).unwrap();
    let scratch_only = totp_core::state::Marks {
        scratch: vec![7],
        ..Default::default()
    };
    let later = cap + 30;
    let kept = st(1)
        .with_marks(totp_core::state::EnrolmentId(2), scratch_only.clone())
        .with_marks(
            totp_core::state::EnrolmentId(3),
            totp_core::state::Marks {
                totp_until: Some(later),
                ..Default::default()
            },
        );
    put(&mut s, 13, Write::Durable(kept.clone()));
    put(&mut s, 13, Write::Durable(st(2)));
    let path = t.path().join("a/state/13");
    let good = std::fs::read(&path).unwrap();
    let planted = reversioned_slot_1(&good, 0x7f);
    std::fs::write(&path, &planted).unwrap();
    let r = s.reset(13, EARLIEST_CLOCK - 1, false);
    assert!(
        matches!(&r, Err(StoreError::Refused(m)) if m.contains("clock")),
        "{r:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), planted, "nothing written");
    let r = s.reset(13, NOW, false).unwrap();
    assert!(
        matches!(&r, Reset::Removed(m) if m.contains("counts as used")),
        "{r:?}"
    );
    let mark = |st: &UserState, id| st.marks_of(totp_core::state::EnrolmentId(id)).cloned();
    let after = s.read(13).unwrap();
    assert_eq!(mark(&after, 1).unwrap().totp_until, Some(cap));
    let raised = mark(&after, 2).unwrap();
    assert_eq!(raised.totp_until, Some(cap), "{after:?}");
    assert_eq!(raised.scratch, scratch_only.scratch);
    assert_eq!(mark(&after, 3).unwrap().totp_until, Some(later));
    // Control: a record this release reads keeps its marks as they are.
    put(&mut s, 14, Write::Durable(st(1)));
    s.reset(14, NOW, false).unwrap();
    assert_eq!(s.read(14).unwrap().marks, st(1).marks);
}

/// A plain file or a FIFO where a directory of the store's path should be is refused,
/// named for what it is (the message an administrator reads), without blocking on the FIFO and without creating anything;
/// control: a directory there is walked through (and the store created below it).
#[test]
fn a_file_or_fifo_in_the_stores_path_is_refused_without_blocking() {
    let t = private_tempdir();
    std::fs::write(t.path().join("plain"), b"").unwrap();
    nix::unistd::mkfifo(&t.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
    // A plain file was named "not a regular file" before.
    for (name, what) in [("plain", "a regular file"), ("fifo", "a FIFO")] {
        let (tx, rx) = std::sync::mpsc::channel();
        let dir = t.path().join(name).join("state");
        std::thread::spawn(move || {
            let mut s = StateDir::new(dir, Duration::from_millis(100));
            let _ = tx.send(s.update(1, &mut |_| Write::Lazy(st(1))));
        });
        // The bound is a hang guard, not a speed goal.
        let result = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the walk blocked on a FIFO");
        match result {
            Err(StoreError::Refused(m)) => {
                assert!(m.contains(&format!("is {what}; not followed")), "{m}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // The store's own directory a FIFO: not opened in a way that blocks either.
    let (tx, rx) = std::sync::mpsc::channel();
    let fifo = t.path().join("fifo");
    std::thread::spawn(move || {
        let s = StateDir::new(fifo, Duration::from_millis(100));
        let _ = tx.send(s.open_dir(false).map(|_| ()));
    });
    match rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the open blocked on a FIFO")
    {
        Err(StoreError::Refused(m)) => assert!(m.contains("is a FIFO; not followed"), "{m}"),
        other => panic!("{other:?}"),
    }
    let mut s = StateDir::new(t.path().join("dir/state"), Duration::from_millis(100));
    std::fs::create_dir(t.path().join("dir")).unwrap();
    assert!(s.update(1, &mut |_| Write::Lazy(st(1))).is_ok());
}

/// The store directory's descriptor, kept for the process's life in a long-running
/// host, is close-on-exec, whether one `openat2` opened it or the walk that created it,
/// and so is a record's.
#[test]
fn the_store_directory_descriptor_is_close_on_exec() {
    let t = private_tempdir();
    let s = StateDir::new(t.path().join("a/state"), Duration::from_millis(100));
    let created = s.open_dir(true).unwrap().expect("created");
    let again = s.open_dir(false).unwrap().expect("opened");
    let mut s = s;
    let (record, _) = s.open_record(1, true, true).unwrap().expect("record");
    let fds = [created, again, OwnedFd::from(record)];
    for fd in &fds {
        let flags = fcntl::fcntl(fd, fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }
}

/// Above the store's own directory, each directory on the way must be root's or the
/// store owner's (a service account's home); another account's is refused, as a
/// directory writable by others is. Walked with the store not created yet (the path
/// the walk takes, not the single `openat2`); the owner is a service account here.
#[test]
fn directories_above_the_store_belong_to_root_or_its_owner() {
    const OWNER: u32 = 4242;
    let t = private_tempdir();
    for (above, mode, accepted) in [
        (0, 0o755, true),
        // Sticky but written by nobody else: nothing to fear.
        (0, 0o1755, true),
        (OWNER, 0o755, true),
        (4343, 0o755, false),
        (OWNER, 0o775, false),
    ] {
        let base = t.path().join(format!("u{above}-{mode:o}"));
        std::fs::create_dir(&base).unwrap();
        std::os::unix::fs::chown(&base, Some(above), None).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(mode)).unwrap();
        let mut s = StateDir::new(base.join("state"), Duration::from_millis(100));
        s.owner = OWNER;
        let opened = s.open_dir(false);
        // The same with the store there, which one `openat2` reaches and checks on its
        // own (it must accept only what the walk accepts).
        let state = base.join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(OWNER), None).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let comps: Vec<OsString> = state
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                _ => None,
            })
            .collect();
        let fast = s.open_dir_fast(&comps).is_some();
        assert_eq!(fast, accepted, "fast path: {above} {mode:o}");
        let walked = matches!(s.open_dir(false), Ok(Some(_)));
        assert_eq!(walked, accepted, "{above} {mode:o}");
        if accepted {
            assert!(matches!(opened, Ok(None)), "{above} {mode:o}: {opened:?}");
        } else {
            // Refused for what it is: no sticky bit is blamed.
            assert!(
                matches!(opened, Err(StoreError::Refused(ref m)) if !m.contains("sticky")),
                "{above} {mode:o}: {opened:?}"
            );
        }
    }
}

/// What a test puts at a record's name between two steps of its open.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Swap {
    Symlink,
    Fifo,
    Directory,
    /// A second name of a file outside the store.
    HardLink,
    /// A file of another owner, otherwise a record's (mode 0600, one link).
    Foreign,
}

/// The file outside the store a swapped entry leads to, and its bytes.
const OUTSIDE: &[u8] = b"not a record";

/// `name` in `dir` replaced by `swap`; `outside` is the file a symlink or hard link
/// leads to. The old entry's file is kept open by the caller where needed.
fn swap_entry(dir: &Path, name: &str, outside: &Path, swap: Swap) {
    let at = dir.join(name);
    std::fs::remove_file(&at).unwrap();
    match swap {
        Swap::Symlink => symlink(outside, &at).unwrap(),
        Swap::Fifo => nix::unistd::mkfifo(&at, Mode::from_bits_truncate(0o600)).unwrap(),
        Swap::Directory => std::fs::create_dir(&at).unwrap(),
        Swap::HardLink => std::fs::hard_link(outside, &at).unwrap(),
        Swap::Foreign => {
            std::fs::write(&at, OUTSIDE).unwrap();
            std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&at, Some(4242), None).unwrap();
        }
    }
}

/// Runs `f` on a thread of its own (fault plans are per thread) and waits a bounded
/// time for it: a login that blocked on a FIFO would never answer (a hang guard, not a
/// timing goal).
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the store answered (it did not block)")
}

/// A record swapped for a symlink, a FIFO, a directory, a hard link to a file outside
/// the store or a file of another owner between the `lstat` that found it a plain
/// record and its open (the hook at `OpenFile`): a login's update and an admin's reset
/// refuse it, name what is there, never block, and leave the file it leads to as it was
/// (before the fix, the allocation of a record with holes ran before the owner and link
/// checks and grew another owner's file, or the file behind a hard link, to the
/// record's 16 KiB). Control: without the swap, the same update writes the record.
#[test]
fn a_record_swapped_between_its_lstat_and_its_open_is_refused_and_left_untouched() {
    for swap in [
        None,
        Some(Swap::Symlink),
        Some(Swap::Fifo),
        Some(Swap::Directory),
        Some(Swap::HardLink),
        Some(Swap::Foreign),
    ] {
        let (t, mut s) = store();
        put(&mut s, 41, Write::Durable(st(1)));
        let dir = t.path().join("a/state");
        let outside = t.path().join("outside");
        std::fs::write(&outside, OUTSIDE).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.clone();
        let target = outside.clone();
        let (r, reached) = on_thread(move || {
            fault::clear();
            if let Some(swap) = swap {
                let at = path.clone();
                fault::run_at(FaultPoint::OpenFile, move || {
                    swap_entry(&at, "41", &target, swap);
                });
            }
            let mut s = StateDir::new(&path, Duration::from_millis(300));
            let r = s.update(41, &mut |_| Write::Durable(st(9)));
            let reached = !fault::pending(FaultPoint::OpenFile);
            fault::clear();
            (r, reached)
        });
        let Some(swap) = swap else {
            assert!(r.is_ok(), "control: {r:?}");
            assert_eq!(s.read(41).unwrap(), st(9), "control: the mark is written");
            continue;
        };
        assert!(reached, "{swap:?}: the swap happened");
        let want = match swap {
            Swap::Symlink => "41 is a symlink; not followed".to_owned(),
            Swap::Fifo => "41 is a FIFO; refused".to_owned(),
            Swap::Directory => "41 is a directory; not followed".to_owned(),
            Swap::HardLink => "41 has 2 hard links; refused".to_owned(),
            Swap::Foreign => "41 is owned by uid 4242, not 0; refused".to_owned(),
        };
        match &r {
            Err(StoreError::Corrupt(m)) => assert!(m.ends_with(&want), "{swap:?}: {m}"),
            other => panic!("{swap:?}: {other:?}"),
        }
        let behind = if swap == Swap::Foreign {
            dir.join("41")
        } else {
            outside.clone()
        };
        let now = std::fs::read(&behind).unwrap();
        assert!(
            now == OUTSIDE,
            "{swap:?}: the file behind the entry is as it was ({} bytes now)",
            now.len()
        );
        assert!(
            std::fs::symlink_metadata(&behind).unwrap().blocks() * 512 < MAX_FILE_LEN as u64,
            "{swap:?}: no blocks allocated to it"
        );
    }
}

/// The same swap under `totp-state reset`: the reset judged a plain record by its
/// `lstat`, and what its open finds instead is refused (the entry changed while being
/// reset), the file behind it untouched and the entry left for the next reset to
/// judge. Control: without the swap, the reset keeps the record's mark.
#[test]
fn a_record_swapped_under_a_reset_is_not_opened_as_a_record() {
    for swap in [None, Some(Swap::HardLink), Some(Swap::Foreign)] {
        let (t, mut s) = store();
        put(&mut s, 42, Write::Durable(st(1)));
        let dir = t.path().join("a/state");
        // Kept open: a freed inode's number may go to the swapped-in file at once.
        let _old = File::open(dir.join("42")).unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, OUTSIDE).unwrap();
        let path = dir.clone();
        let target = outside.clone();
        let (r, reached) = on_thread(move || {
            fault::clear();
            if let Some(swap) = swap {
                let at = path.clone();
                fault::run_at(FaultPoint::OpenFile, move || {
                    swap_entry(&at, "42", &target, swap);
                });
            }
            let mut s = StateDir::new(&path, Duration::from_millis(300));
            let r = s.reset(42, NOW, false);
            let reached = !fault::pending(FaultPoint::OpenFile);
            fault::clear();
            (r, reached)
        });
        let Some(swap) = swap else {
            assert!(matches!(r, Ok(Reset::Lifted { .. })), "control: {r:?}");
            continue;
        };
        assert!(reached, "{swap:?}: the swap happened");
        match &r {
            Err(StoreError::Unavailable(m)) => {
                assert!(m.ends_with("changed while being reset; try again"), "{m}")
            }
            other => panic!("{swap:?}: {other:?}"),
        }
        let behind = if swap == Swap::Foreign {
            dir.join("42")
        } else {
            outside.clone()
        };
        let now = std::fs::read(&behind).unwrap();
        assert!(now == OUTSIDE, "{swap:?}: {} bytes now", now.len());
        // Judged again by the next reset: removed, never followed.
        assert!(
            matches!(s.reset(42, NOW, false), Ok(Reset::Removed(_))),
            "{swap:?}"
        );
        let now = std::fs::read(&outside).unwrap();
        assert!(now == OUTSIDE, "{swap:?}: {} bytes now", now.len());
    }
}

/// A record removed by its name between its open and its `fstat` (the hook at
/// `OpenedFile`; the descriptor then holds a file without links) is opened again: a
/// login creates a new record and writes its mark there, where the next login reads
/// it, instead of being refused with "0 hard links" as a tampered record; a read finds
/// no record. Control: without the removal, the same file keeps the mark.
#[test]
fn a_record_removed_between_its_open_and_its_fstat_is_opened_again() {
    for remove in [false, true] {
        let (t, mut s) = store();
        put(&mut s, 43, Write::Durable(st(1)));
        let path = t.path().join("a/state/43");
        let old_ino = std::fs::metadata(&path).unwrap().ino();
        // Kept open: a freed inode's number may go to the next new file at once.
        let _old = File::open(&path).unwrap();
        let dir = t.path().join("a/state");
        let (r, reached) = on_thread(move || {
            fault::clear();
            if remove {
                let at = dir.join("43");
                fault::run_at(FaultPoint::OpenedFile, move || {
                    std::fs::remove_file(&at).unwrap();
                });
            }
            let mut s = StateDir::new(&dir, Duration::from_millis(300));
            let r = s.update(43, &mut |_| Write::Durable(st(9)));
            let reached = remove && !fault::pending(FaultPoint::OpenedFile);
            fault::clear();
            (r, reached)
        });
        assert_eq!(reached, remove, "remove={remove}: the removal happened");
        assert!(r.is_ok(), "remove={remove}: {r:?}");
        let new_ino = std::fs::metadata(&path).unwrap().ino();
        assert_eq!(new_ino != old_ino, remove, "remove={remove}");
        let id = totp_core::state::EnrolmentId(1);
        assert_eq!(
            s.read(43).unwrap().marks_of(id),
            st(9).marks_of(id),
            "remove={remove}: the mark is in the record the name leads to"
        );
    }
    // A read (`totp-state show`, a shared store's look at the local marks) of a record
    // removed at that moment finds none.
    let (t, mut s) = store();
    put(&mut s, 44, Write::Durable(st(1)));
    let dir = t.path().join("a/state");
    let (r, reached) = on_thread(move || {
        fault::clear();
        let at = dir.join("44");
        fault::run_at(FaultPoint::OpenedFile, move || {
            std::fs::remove_file(&at).unwrap();
        });
        let mut s = StateDir::new(&dir, Duration::from_millis(300));
        let r = s.read(44);
        let reached = !fault::pending(FaultPoint::OpenedFile);
        fault::clear();
        (r, reached)
    });
    assert!(reached, "the removal happened");
    assert_eq!(r.unwrap(), UserState::default());
}

/// A directory of the store's path that the store just created, replaced by a symlink
/// before its mode is set (the hook at `DirCreated`): the mode goes on a descriptor
/// opened without following anything, so the file the symlink leads to keeps its mode
/// (the chmod by name followed it, as root), and the login is refused naming the
/// symlink. Control: without the swap, the directory is created with mode 0700.
#[test]
fn a_new_store_directory_replaced_by_a_symlink_is_not_followed() {
    for swap in [false, true] {
        let t = private_tempdir();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let target = t.path().join("target");
        std::fs::write(&target, OUTSIDE).unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let dir = t.path().join("state");
        let (at, to) = (dir.clone(), target.clone());
        let (r, reached) = on_thread(move || {
            fault::clear();
            if swap {
                fault::run_at(FaultPoint::DirCreated, move || {
                    std::fs::remove_dir(&at).unwrap();
                    symlink(&to, &at).unwrap();
                });
            }
            let mut s = StateDir::new(&dir, Duration::from_millis(300));
            let r = s.update(45, &mut |_| Write::Durable(st(9)));
            let reached = swap && !fault::pending(FaultPoint::DirCreated);
            fault::clear();
            (r, reached)
        });
        assert_eq!(reached, swap, "swap={swap}: the directory was replaced");
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&target), 0o644, "swap={swap}: the target's mode");
        if swap {
            match &r {
                Err(StoreError::Refused(m)) => {
                    assert!(m.ends_with("\"state\" is a symlink; not followed"), "{m}")
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert!(r.is_ok(), "control: {r:?}");
            assert_eq!(mode(&t.path().join("state")), 0o700);
        }
    }
}

/// The fast path's checks go up from the directory it opened through `..`, so they see
/// where that directory is when checked: moved below a directory anyone can write
/// between the `openat2` and the checks (the hook at `DirOpened`), it is refused there,
/// and the component walk takes the path as it now is (creating the store afresh);
/// nothing is written below the writable directory. Control: not moved, the record goes
/// into the directory opened.
#[test]
fn the_fast_open_checks_the_directory_where_it_is_after_the_open() {
    for moved in [false, true] {
        let (t, mut s) = store();
        put(&mut s, 1, Write::Nothing);
        let state = t.path().join("a/state");
        let before = std::fs::metadata(&state).unwrap().ino();
        let open = t.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        // At the same depth, so that only the writable parent can give it away.
        let (from, to) = (state.clone(), open.join("state"));
        let dir = state.clone();
        let (r, reached) = on_thread(move || {
            fault::clear();
            if moved {
                fault::run_at(FaultPoint::DirOpened, move || {
                    std::fs::rename(&from, &to).unwrap();
                });
            }
            let mut s = StateDir::new(&dir, Duration::from_millis(300));
            let r = s.update(46, &mut |_| Write::Durable(st(9)));
            let reached = moved && !fault::pending(FaultPoint::DirOpened);
            fault::clear();
            (r, reached)
        });
        assert_eq!(reached, moved, "moved={moved}: the move happened");
        assert!(r.is_ok(), "moved={moved}: {r:?}");
        let moved_to = open.join("state");
        assert_eq!(moved_to.exists(), moved, "moved={moved}");
        if moved {
            assert!(
                !moved_to.join("46").exists(),
                "nothing written below the writable directory"
            );
        }
        let now = std::fs::metadata(&state).unwrap().ino();
        assert_eq!(
            now == before,
            !moved,
            "moved={moved}: the directory at the path"
        );
        assert!(state.join("46").exists(), "moved={moved}");
    }
}

/// A record an earlier version created with holes (its first slot only) is allocated
/// to four slots by the next login, which no full file system can then refuse; a
/// root-owned 0600 file at the name that passes every check but is no record (as
/// another file bind-mounted over the name would be) is refused unread as a record and
/// left as it was: the allocation comes only after the file has read as a record.
#[test]
fn only_a_file_that_reads_as_a_record_is_allocated() {
    for record in [true, false] {
        let (t, mut s) = store();
        put(&mut s, 1, Write::Nothing);
        let path = t.path().join("a/state/47");
        let bytes = if record {
            encode_slot(1, &st(1)).unwrap()
        } else {
            b"-----BEGIN OPENSSH PRIVATE KEY-----\n".repeat(20)
        };
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        assert!(
            before.blocks() * 512 < MAX_FILE_LEN as u64,
            "holes to start with"
        );
        let r = s.update(47, &mut |_| Write::Durable(st(9)));
        let after = std::fs::metadata(&path).unwrap();
        if record {
            assert!(r.is_ok(), "{r:?}");
            assert!(after.blocks() * 512 >= MAX_FILE_LEN as u64, "allocated");
            assert_eq!(s.read(47).unwrap(), st(9));
        } else {
            match &r {
                Err(StoreError::Corrupt(m)) => assert!(m.contains("passes its check"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(after.len(), before.len(), "the file's size is as it was");
            assert_eq!(after.blocks(), before.blocks(), "no blocks given to it");
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "its bytes as they were"
            );
        }
    }
}

/// An entry `totp-state reset` judged hostile (a symlink) that is replaced by a new
/// record before the reset removes it by name (the hook at `ResetRemoval`: another
/// reset removed the symlink and a login created its record and recorded a code) is
/// left alone: the record and its mark stay, and the reset asks to be run again. The
/// freed inode number is often the new record's at once, so the number alone did not
/// tell them apart and the record with its mark was removed (the code admitted again).
/// Control: nothing replaced, the symlink is removed.
#[test]
fn a_reset_never_removes_a_record_created_after_it_judged_the_entry() {
    for replace in [false, true] {
        let (t, mut s) = store();
        put(&mut s, 1, Write::Nothing);
        let dir = t.path().join("a/state");
        symlink(t.path().join("target"), dir.join("48")).unwrap();
        let at = dir.clone();
        let (r, reached) = on_thread(move || {
            fault::clear();
            if replace {
                let at = at.clone();
                fault::run_at(FaultPoint::ResetRemoval, move || {
                    std::fs::remove_file(at.join("48")).unwrap();
                    let mut login = StateDir::new(&at, Duration::from_millis(300));
                    login.update(48, &mut |_| Write::Durable(st(9))).unwrap();
                });
            }
            let mut s = StateDir::new(&at, Duration::from_millis(300));
            let r = s.reset(48, NOW, false);
            let reached = replace && !fault::pending(FaultPoint::ResetRemoval);
            fault::clear();
            (r, reached)
        });
        assert_eq!(
            reached, replace,
            "replace={replace}: the record was created"
        );
        if replace {
            match &r {
                Err(StoreError::Unavailable(m)) => {
                    assert!(m.ends_with("changed while being reset; try again"), "{m}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(s.read(48).unwrap(), st(9), "the record and its mark stay");
        } else {
            assert!(matches!(r, Ok(Reset::Removed(_))), "control: {r:?}");
            assert!(std::fs::symlink_metadata(dir.join("48")).is_err());
        }
    }
}

/// A reset keeps a record's blocks: a record whose slots all fail their check is
/// emptied by truncation, which freed them, so the user's next login needed a block for
/// its write and a full file system denied it (the lockout the allocation prevents).
/// Control: a readable record with holes, reset, is allocated as a login allocates it.
#[test]
fn a_reset_record_keeps_its_blocks() {
    for readable in [true, false] {
        let (t, mut s) = store();
        put(&mut s, 1, Write::Nothing);
        let path = t.path().join("a/state/48");
        let bytes = if readable {
            encode_slot(1, &st(1)).unwrap()
        } else {
            vec![0x55; 100]
        };
        std::fs::write(&path, &bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        assert!(
            before.blocks() * 512 < MAX_FILE_LEN as u64,
            "holes to start with"
        );
        let r = s.reset(48, NOW, false).unwrap();
        if readable {
            assert!(matches!(r, Reset::Lifted { .. }), "{r:?}");
        } else {
            assert!(matches!(r, Reset::Removed(_)), "{r:?}");
            assert_eq!(s.read(48).unwrap(), UserState::default(), "emptied");
        }
        let after = std::fs::metadata(&path).unwrap();
        assert!(
            after.blocks() * 512 >= MAX_FILE_LEN as u64,
            "readable={readable}: {} blocks",
            after.blocks()
        );
    }
}
