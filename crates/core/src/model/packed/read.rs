//! Reading a [`super::Packed`] buffer back into a target dir, never panicking.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{
    AFTER, BEFORE, FP_FIRST, FP_IN_FIRST, FP_OWN, NONE, PART_INCREMENTAL, PART_ORPHAN, PART_UNIT,
    RUN_IN_PATHS, RUN_NONE, RUN_OWN,
};
use crate::model::rebuild::Timing;
use crate::model::{
    ByKind, FsId, IncrementalDir, Layout, Orphan, Part, Profile, ProfileState, ScanErrors,
    SharedInode, Signal, TargetDir, Unit, UnitKey, Usage, names,
};

pub(super) struct In<'a> {
    pub(super) buf: &'a [u8],
    pub(super) prev: Vec<u8>,
}

impl<'a> In<'a> {
    fn u(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first()?;
            self.buf = rest;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn n(&mut self) -> Option<usize> {
        usize::try_from(self.u()?).ok()
    }

    /// A count of items each at least a byte long: never more than the bytes left.
    fn count(&mut self) -> Option<usize> {
        self.n().filter(|&n| n <= self.buf.len())
    }

    fn u16(&mut self) -> Option<u16> {
        u16::try_from(self.u()?).ok()
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.u()?).ok()
    }

    fn flag(&mut self) -> Option<bool> {
        match self.take(1)? {
            [0] => Some(false),
            [1] => Some(true),
            _ => None,
        }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let buf: &'a [u8] = self.buf;
        let (head, rest) = buf.split_at_checked(n)?;
        self.buf = rest;
        Some(head)
    }

    fn fixed(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn opt_fixed(&mut self) -> Option<Option<u64>> {
        Some(if self.flag()? {
            Some(self.fixed()?)
        } else {
            None
        })
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.n()?;
        self.take(n)
    }

    fn str(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn strs(&mut self) -> Option<Vec<String>> {
        self.list(Self::str)
    }

    fn path(&mut self) -> Option<PathBuf> {
        let shared = self.n()?;
        let rest = self.bytes()?;
        if shared > self.prev.len() {
            return None;
        }
        self.prev.truncate(shared);
        self.prev.extend_from_slice(rest);
        Some(PathBuf::from(OsStr::from_bytes(&self.prev)))
    }

    fn paths(&mut self) -> Option<Vec<PathBuf>> {
        self.list(Self::path)
    }

    fn hashes(&mut self) -> Option<Vec<u64>> {
        self.list(Self::fixed)
    }

    fn indices(&mut self) -> Option<Vec<usize>> {
        self.list(Self::n)
    }

    fn opt_time(&mut self) -> Option<Option<SystemTime>> {
        let tag = self.u()?;
        if tag == NONE {
            return Some(None);
        }
        let secs = self.u()?;
        let d = Duration::new(secs, self.u32().filter(|&n| n < 1_000_000_000)?);
        Some(Some(match tag {
            AFTER => UNIX_EPOCH.checked_add(d)?,
            BEFORE => UNIX_EPOCH.checked_sub(d)?,
            _ => return None,
        }))
    }

    fn time(&mut self) -> Option<SystemTime> {
        self.opt_time()?
    }

    fn usage(&mut self) -> Option<Usage> {
        Some(Usage {
            bytes: self.u()?,
            apparent_bytes: self.u()?,
            files: self.u()?,
        })
    }

    fn by_kind(&mut self) -> Option<ByKind> {
        Some(ByKind {
            deps: self.usage()?,
            build: self.usage()?,
            incremental: self.usage()?,
            fingerprint: self.usage()?,
            other: self.usage()?,
        })
    }

    fn layout(&mut self) -> Option<Layout> {
        Some(if self.flag()? {
            Layout::New
        } else {
            Layout::Legacy
        })
    }

    fn key(&mut self) -> Option<UnitKey> {
        Some(UnitKey {
            profile: self.u16()?,
            hash: self.fixed()?,
            layout: self.layout()?,
        })
    }

    fn list<T>(&mut self, item: impl Fn(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        let n = self.count()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(item(self)?);
        }
        Some(v)
    }

    /// The target dir at `path` (which the buffer does not hold).
    pub(super) fn target(&mut self, path: PathBuf) -> Option<TargetDir> {
        Some(TargetDir {
            path,
            dev: self.u()?,
            ino: self.u()?,
            profiles: self.list(Self::profile)?,
            units: self.list(Self::unit)?,
            incremental: self.list(Self::incremental)?,
            orphans: self.list(Self::orphan)?,
            shared: self.list(|r| {
                Some(SharedInode {
                    bytes: r.u()?,
                    owners: r.list(|r| {
                        let (tag, i) = (r.u()?, r.n()?);
                        match tag {
                            PART_UNIT => Some(Part::Unit(i)),
                            PART_INCREMENTAL => Some(Part::Incremental(i)),
                            PART_ORPHAN => Some(Part::Orphan(i)),
                            _ => None,
                        }
                    })?,
                })
            })?,
            usage: self.by_kind()?,
            errors: self.errors()?,
            rustc_vv: if self.flag()? {
                Some(self.str()?)
            } else {
                None
            },
            jobs: self.u32()?,
            signal: match self.u()? {
                0 => Signal::Atime,
                1 => Signal::Relatime,
                2 => Signal::BuildTimeOnly,
                3 => Signal::Recorded,
                _ => return None,
            },
            fs: FsId(self.n()?),
            kept_units: self.n()?,
        })
    }

    fn profile(&mut self) -> Option<Profile> {
        Some(Profile {
            rel: self.path()?,
            layouts: self.list(Self::layout)?,
            usage: self.by_kind()?,
            state: match self.u()? {
                0 => ProfileState::Idle,
                1 => ProfileState::Busy,
                2 => ProfileState::Unlockable,
                _ => return None,
            },
        })
    }

    fn errors(&mut self) -> Option<ScanErrors> {
        Some(ScanErrors {
            vanished: self.u()?,
            permission_denied: self.u()?,
            other: self.u()?,
            examples: self.strs()?,
            mount_points: self.paths()?,
        })
    }

    fn unit(&mut self) -> Option<Unit> {
        let key = self.key()?;
        let package = self.str()?;
        let targets = self.strs()?;
        let fingerprints = self.hashes()?;
        let rustc = self.hashes()?;
        let deps = self.hashes()?;
        let profile_hash = self.opt_fixed()?;
        let compile_kind = self.opt_fixed()?;
        let dependents = self.indices()?;
        let build_script = self.flag()?;
        let paths = self.paths()?;
        let fingerprint_dir = match self.u()? {
            FP_FIRST => paths.first()?.clone(),
            FP_IN_FIRST => paths.first()?.join("fingerprint"),
            FP_OWN => self.path()?,
            _ => return None,
        };
        let run_dir = match self.u()? {
            RUN_NONE => None,
            RUN_OWN => Some(self.path()?),
            i => Some(paths.get(usize::try_from(i).ok()? - RUN_IN_PATHS)?.clone()),
        };
        Some(Unit {
            key,
            package,
            targets,
            fingerprints,
            rustc,
            deps,
            profile_hash,
            compile_kind,
            dependents,
            build_script,
            paths,
            fingerprint_dir,
            run_dir,
            usage: self.by_kind()?,
            reclaimable: self.u()?,
            last_used: self.time()?,
            last_built: self.time()?,
            invoked: self.opt_time()?,
            finished: self.opt_time()?,
            metadata_at: self.opt_time()?,
            proc_macro: self.flag()?,
            timing: if self.flag()? {
                Some(Timing {
                    seconds: f64::from_bits(self.fixed()?),
                    metadata_seconds: f64::from_bits(self.fixed()?),
                    recorded_seconds: self.opt_fixed()?.map(f64::from_bits),
                    measured: self.flag()?,
                })
            } else {
                None
            },
            unreadable: self.u32()?,
        })
    }

    fn incremental(&mut self) -> Option<IncrementalDir> {
        let profile = self.u16()?;
        let name = self.str()?;
        let crate_name = if self.flag()? {
            names::incremental_crate(&name)?.to_string()
        } else {
            self.str()?
        };
        Some(IncrementalDir {
            profile,
            name,
            crate_name,
            path: self.path()?,
            usage: self.usage()?,
            reclaimable: self.u()?,
            newest_session: self.opt_time()?,
            newest_mtime: self.time()?,
            dir_mtime: self.opt_time()?,
            session_locks: self.strs()?,
            owners: self.indices()?,
        })
    }

    fn orphan(&mut self) -> Option<Orphan> {
        Some(Orphan {
            key: self.key()?,
            paths: self.paths()?,
            usage: self.by_kind()?,
            reclaimable: self.u()?,
            newest_mtime: self.time()?,
        })
    }
}
