use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Packed;
use crate::model::rebuild::Timing;
use crate::model::target::tests::{blank_dir, blank_unit};
use crate::model::{
    ByKind, FsId, IncrementalDir, Layout, Orphan, Part, Profile, ProfileState, ScanErrors,
    SharedInode, Signal, TargetDir, Unit, UnitKey, Usage,
};

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn usage(n: u64) -> Usage {
    Usage {
        bytes: n * 4096,
        apparent_bytes: n * 4000 + 7,
        files: n,
    }
}

fn by_kind(n: u64) -> ByKind {
    ByKind {
        deps: usage(n),
        build: usage(n + 1),
        incremental: usage(0),
        fingerprint: usage(n + 3),
        other: usage(u64::MAX / 4096),
    }
}

/// A target dir with every field set, every variant met and every shortcut of the packer
/// both taken and not.
fn everything() -> TargetDir {
    let mut t = blank_dir();
    t.path = PathBuf::from(OsStr::from_bytes(b"/srv/ci/target-\xff"));
    t.dev = 2049;
    t.ino = u64::MAX;
    t.profiles = vec![
        Profile {
            rel: "debug".into(),
            layouts: vec![Layout::Legacy, Layout::New],
            usage: by_kind(3),
            state: ProfileState::Idle,
        },
        Profile {
            rel: "x86_64-unknown-linux-gnu/release".into(),
            layouts: vec![],
            usage: ByKind::default(),
            state: ProfileState::Busy,
        },
        Profile {
            rel: "doc".into(),
            layouts: vec![Layout::New],
            usage: by_kind(1),
            state: ProfileState::Unlockable,
        },
    ];
    let lib = Unit {
        key: UnitKey {
            profile: 0,
            hash: 0x054e_37a5_e5b0_dc4b,
            layout: Layout::Legacy,
        },
        package: "serde".into(),
        targets: vec!["lib-serde".into(), "test-lib-serde".into()],
        fingerprints: vec![1, u64::MAX],
        rustc: vec![0xdead_beef],
        deps: vec![7, 8, 9],
        profile_hash: Some(42),
        compile_kind: None,
        dependents: vec![1, 2],
        build_script: false,
        paths: vec![
            "debug/.fingerprint/serde-054e37a5e5b0dc4b".into(),
            "debug/deps/libserde-054e37a5e5b0dc4b.rlib".into(),
            "debug/deps/libserde-054e37a5e5b0dc4b.rmeta".into(),
        ],
        fingerprint_dir: "debug/.fingerprint/serde-054e37a5e5b0dc4b".into(),
        run_dir: None,
        usage: by_kind(5),
        reclaimable: 12345,
        last_used: at(1_765_000_000, 999_999_999),
        last_built: at(1_764_000_000, 1),
        invoked: Some(at(1_764_000_000, 0)),
        finished: None,
        metadata_at: Some(UNIX_EPOCH - Duration::new(5, 3)),
        proc_macro: true,
        timing: Some(Timing {
            seconds: 1.5,
            metadata_seconds: f64::MIN_POSITIVE,
            recorded_seconds: None,
            measured: true,
        }),
        unreadable: 2,
    };
    let run = Unit {
        key: UnitKey {
            profile: 1,
            hash: 1,
            layout: Layout::New,
        },
        package: "app".into(),
        targets: vec!["run-build-script-build-script-build".into()],
        build_script: true,
        paths: vec!["release/build/app/0000000000000001".into()],
        fingerprint_dir: "release/build/app/0000000000000001/fingerprint".into(),
        run_dir: Some("release/build/app/0000000000000001".into()),
        compile_kind: Some(3),
        timing: Some(Timing {
            seconds: 0.0,
            metadata_seconds: 0.0,
            recorded_seconds: Some(2.25),
            measured: false,
        }),
        last_used: UNIX_EPOCH - Duration::from_secs(1),
        ..blank_unit()
    };
    let odd = Unit {
        key: UnitKey {
            profile: 2,
            hash: 2,
            layout: Layout::Legacy,
        },
        package: "ödd".into(),
        paths: vec![PathBuf::from(OsStr::from_bytes(b"doc/deps/\x80"))],
        fingerprint_dir: "doc/.fingerprint/elsewhere".into(),
        run_dir: Some("doc/build/odd-0000000000000002".into()),
        ..blank_unit()
    };
    t.units = vec![lib, run, odd];
    t.incremental = vec![
        IncrementalDir {
            profile: 0,
            name: "serde-2xv58ml9w4460".into(),
            crate_name: "serde".into(),
            path: "debug/incremental/serde-2xv58ml9w4460".into(),
            usage: usage(40),
            reclaimable: 1,
            newest_session: Some(at(1_764_000_100, 5)),
            newest_mtime: at(1_764_000_200, 6),
            dir_mtime: None,
            session_locks: vec!["s-h1-abc.lock".into(), "s-h2-def.lock".into()],
            owners: vec![0],
        },
        IncrementalDir {
            profile: 2,
            name: "not a crate".into(),
            crate_name: "named otherwise".into(),
            path: "doc/incremental/x".into(),
            usage: Usage::default(),
            reclaimable: 0,
            newest_session: None,
            newest_mtime: UNIX_EPOCH,
            dir_mtime: Some(at(3, 4)),
            session_locks: vec![],
            owners: vec![],
        },
    ];
    t.orphans = vec![Orphan {
        key: UnitKey {
            profile: 0,
            hash: 0xabc,
            layout: Layout::Legacy,
        },
        paths: vec!["debug/deps/libgone-0000000000000abc.rlib".into()],
        usage: by_kind(2),
        reclaimable: 8192,
        newest_mtime: at(1_700_000_000, 0),
    }];
    t.shared = vec![SharedInode {
        bytes: 4096,
        owners: vec![Part::Unit(0), Part::Incremental(1), Part::Orphan(0)],
    }];
    t.usage = by_kind(100);
    t.errors = ScanErrors {
        vanished: 1,
        permission_denied: 2,
        other: 3,
        examples: vec!["debug/x: refused".into()],
        mount_points: vec!["debug/mnt".into()],
    };
    t.rustc_vv = Some("rustc 1.95.0\nhost: x86_64-unknown-linux-gnu\n".into());
    t.jobs = 16;
    t.signal = Signal::Recorded;
    t.fs = FsId(3);
    t.kept_units = 1;
    t
}

#[test]
fn a_target_dir_unpacks_as_it_was_packed() {
    let t = everything();
    let packed = Packed::pack(&t);
    let back = packed.unpack().expect("it reads back");
    assert_eq!(format!("{back:#?}"), format!("{t:#?}"));
    assert_eq!(packed.path(), t.path);
    assert_eq!((packed.units(), packed.kept_units()), (3, 1));
    for (signal, state) in [
        (Signal::Atime, ProfileState::Busy),
        (Signal::Relatime, ProfileState::Idle),
        (Signal::BuildTimeOnly, ProfileState::Unlockable),
    ] {
        let mut t = everything();
        t.signal = signal;
        t.profiles[0].state = state;
        t.rustc_vv = None;
        let back = Packed::pack(&t).unpack().expect("it reads back");
        assert_eq!(format!("{back:?}"), format!("{t:?}"));
    }
    let empty = blank_dir();
    let back = Packed::pack(&empty).unpack().expect("it reads back");
    assert_eq!(format!("{back:?}"), format!("{empty:?}"));
}

#[test]
fn a_unit_packs_into_a_fraction_of_what_it_holds() {
    let mut t = blank_dir();
    t.units = (0..1000u64)
        .map(|i| {
            let name = format!("crate{i}-{i:016x}");
            let lib = format!("libcrate{i}-{i:016x}");
            Unit {
                key: UnitKey {
                    profile: 0,
                    hash: i,
                    layout: Layout::Legacy,
                },
                package: format!("crate{i}"),
                targets: vec![format!("lib-crate{i}")],
                fingerprints: vec![i],
                rustc: vec![1],
                deps: vec![i / 2, i / 3],
                paths: vec![
                    format!("debug/.fingerprint/{name}").into(),
                    format!("debug/deps/{name}.d").into(),
                    format!("debug/deps/{lib}.rlib").into(),
                    format!("debug/deps/{lib}.rmeta").into(),
                ],
                fingerprint_dir: format!("debug/.fingerprint/{name}").into(),
                usage: by_kind(i),
                last_used: at(1_765_000_000 + i, 1),
                last_built: at(1_765_000_000, 2),
                invoked: Some(at(1_765_000_000, 3)),
                finished: Some(at(1_765_000_000, 4)),
                ..blank_unit()
            }
        })
        .collect();
    let packed = Packed::pack(&t);
    // Each unit is a struct of 520 bytes and a dozen allocations; packed, under 300 bytes.
    assert!(
        packed.bytes.len() < 300 * 1000,
        "{} bytes",
        packed.bytes.len()
    );
    let back = packed.unpack().expect("it reads back");
    assert_eq!(format!("{back:?}"), format!("{t:?}"));
}

#[test]
fn a_buffer_that_is_not_a_whole_target_dir_reads_as_none() {
    let packed = Packed::pack(&everything());
    let with = |bytes: Vec<u8>| Packed {
        bytes: bytes.into_boxed_slice(),
        ..packed.clone()
    };
    for cut in 0..packed.bytes.len() {
        assert!(
            with(packed.bytes[..cut].to_vec()).unpack().is_none(),
            "{cut}"
        );
    }
    let mut longer = packed.bytes.to_vec();
    longer.push(0);
    assert!(with(longer).unpack().is_none());
    // Whatever a byte is changed to, unpacking returns (something or nothing) and never
    // panics.
    for i in 0..packed.bytes.len() {
        for b in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
            let mut bytes = packed.bytes.to_vec();
            bytes[i] = b;
            let _ = with(bytes).unpack();
        }
    }
}
