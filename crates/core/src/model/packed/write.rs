//! Writing a target dir into a [`super::Packed`] buffer.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{
    AFTER, BEFORE, FP_FIRST, FP_IN_FIRST, FP_OWN, NONE, PART_INCREMENTAL, PART_ORPHAN, PART_UNIT,
    RUN_IN_PATHS, RUN_NONE, RUN_OWN,
};
use crate::model::rebuild::Timing;
use crate::model::{
    ByKind, IncrementalDir, Layout, Orphan, Part, Profile, ProfileState, ScanErrors, SharedInode,
    Signal, TargetDir, Unit, UnitKey, Usage, names,
};

#[derive(Default)]
pub(super) struct Out {
    pub(super) buf: Vec<u8>,
    /// The path packed last: the next is written as what it shares with it and the rest.
    prev: Vec<u8>,
}

impl Out {
    fn u(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn n(&mut self, v: usize) {
        self.u(v as u64);
    }

    fn flag(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    fn fixed(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn opt_fixed(&mut self, v: Option<u64>) {
        self.flag(v.is_some());
        if let Some(v) = v {
            self.fixed(v);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.n(b.len());
        self.buf.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Its length, then each item.
    fn list<T>(&mut self, v: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.n(v.len());
        for t in v {
            item(self, t);
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.list(v, |o, s| o.str(s));
    }

    fn path(&mut self, p: &Path) {
        let b = p.as_os_str().as_bytes();
        let shared = self.prev.iter().zip(b).take_while(|(a, b)| a == b).count();
        self.n(shared);
        self.bytes(&b[shared..]);
        self.prev.clear();
        self.prev.extend_from_slice(b);
    }

    fn paths(&mut self, v: &[PathBuf]) {
        self.list(v, |o, p| o.path(p));
    }

    fn hashes(&mut self, v: &[u64]) {
        self.list(v, |o, h| o.fixed(*h));
    }

    fn indices(&mut self, v: &[usize]) {
        self.list(v, |o, i| o.n(*i));
    }

    fn time(&mut self, t: Option<SystemTime>) {
        let Some(t) = t else {
            return self.u(NONE);
        };
        let (tag, d) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (AFTER, d),
            Err(e) => (BEFORE, e.duration()),
        };
        self.u(tag);
        self.u(d.as_secs());
        self.u(u64::from(d.subsec_nanos()));
    }

    fn usage(&mut self, u: &Usage) {
        let Usage {
            bytes,
            apparent_bytes,
            files,
        } = u;
        self.u(*bytes);
        self.u(*apparent_bytes);
        self.u(*files);
    }

    fn by_kind(&mut self, b: &ByKind) {
        let ByKind {
            deps,
            build,
            incremental,
            fingerprint,
            other,
        } = b;
        for u in [deps, build, incremental, fingerprint, other] {
            self.usage(u);
        }
    }

    fn layout(&mut self, l: Layout) {
        self.flag(l == Layout::New);
    }

    fn key(&mut self, k: &UnitKey) {
        let UnitKey {
            profile,
            hash,
            layout,
        } = k;
        self.u(u64::from(*profile));
        self.fixed(*hash);
        self.layout(*layout);
    }

    pub(super) fn target(&mut self, t: &TargetDir) {
        let TargetDir {
            // Kept beside the buffer.
            path: _,
            dev,
            ino,
            profiles,
            units,
            incremental,
            orphans,
            shared,
            usage,
            errors,
            rustc_vv,
            jobs,
            signal,
            fs,
            kept_units,
        } = t;
        self.u(*dev);
        self.u(*ino);
        self.list(profiles, Self::profile);
        self.list(units, Self::unit);
        self.list(incremental, Self::incremental);
        self.list(orphans, Self::orphan);
        self.list(shared, |o, s| {
            let SharedInode { bytes, owners } = s;
            o.u(*bytes);
            o.list(owners, |o, part| {
                let (tag, i) = match part {
                    Part::Unit(i) => (PART_UNIT, i),
                    Part::Incremental(i) => (PART_INCREMENTAL, i),
                    Part::Orphan(i) => (PART_ORPHAN, i),
                };
                o.u(tag);
                o.n(*i);
            });
        });
        self.by_kind(usage);
        self.errors(errors);
        self.flag(rustc_vv.is_some());
        if let Some(vv) = rustc_vv {
            self.str(vv);
        }
        self.u(u64::from(*jobs));
        // Matched, not looked up: a variant added to the model does not compile here.
        self.u(match signal {
            Signal::Atime => 0,
            Signal::Relatime => 1,
            Signal::BuildTimeOnly => 2,
            Signal::Recorded => 3,
        });
        self.n(fs.0);
        self.n(*kept_units);
    }

    fn profile(&mut self, p: &Profile) {
        let Profile {
            rel,
            layouts,
            usage,
            state,
        } = p;
        self.path(rel);
        self.list(layouts, |o, l| o.layout(*l));
        self.by_kind(usage);
        self.u(match state {
            ProfileState::Idle => 0,
            ProfileState::Busy => 1,
            ProfileState::Unlockable => 2,
        });
    }

    fn errors(&mut self, e: &ScanErrors) {
        let ScanErrors {
            vanished,
            permission_denied,
            other,
            examples,
            mount_points,
        } = e;
        self.u(*vanished);
        self.u(*permission_denied);
        self.u(*other);
        self.strs(examples);
        self.paths(mount_points);
    }

    fn unit(&mut self, u: &Unit) {
        let Unit {
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
            usage,
            reclaimable,
            last_used,
            last_built,
            invoked,
            finished,
            metadata_at,
            proc_macro,
            timing,
            unreadable,
        } = u;
        self.key(key);
        self.str(package);
        self.strs(targets);
        self.hashes(fingerprints);
        self.hashes(rustc);
        self.hashes(deps);
        self.opt_fixed(*profile_hash);
        self.opt_fixed(*compile_kind);
        self.indices(dependents);
        self.flag(*build_script);
        self.paths(paths);
        let first = paths.first();
        if first == Some(fingerprint_dir) {
            self.u(FP_FIRST);
        } else if first.is_some_and(|f| f.join("fingerprint") == *fingerprint_dir) {
            self.u(FP_IN_FIRST);
        } else {
            self.u(FP_OWN);
            self.path(fingerprint_dir);
        }
        match run_dir {
            None => self.u(RUN_NONE),
            Some(d) => match paths.iter().position(|p| p == d) {
                Some(i) => self.n(i + RUN_IN_PATHS),
                None => {
                    self.u(RUN_OWN);
                    self.path(d);
                }
            },
        }
        self.by_kind(usage);
        self.u(*reclaimable);
        self.time(Some(*last_used));
        self.time(Some(*last_built));
        self.time(*invoked);
        self.time(*finished);
        self.time(*metadata_at);
        self.flag(*proc_macro);
        self.flag(timing.is_some());
        if let Some(t) = timing {
            let Timing {
                seconds,
                metadata_seconds,
                recorded_seconds,
                measured,
            } = t;
            self.fixed(seconds.to_bits());
            self.fixed(metadata_seconds.to_bits());
            self.opt_fixed(recorded_seconds.map(f64::to_bits));
            self.flag(*measured);
        }
        self.u(u64::from(*unreadable));
    }

    fn incremental(&mut self, i: &IncrementalDir) {
        let IncrementalDir {
            profile,
            name,
            crate_name,
            path,
            usage,
            reclaimable,
            newest_session,
            newest_mtime,
            dir_mtime,
            session_locks,
            owners,
        } = i;
        self.u(u64::from(*profile));
        self.str(name);
        let derived = names::incremental_crate(name) == Some(crate_name.as_str());
        self.flag(derived);
        if !derived {
            self.str(crate_name);
        }
        self.path(path);
        self.usage(usage);
        self.u(*reclaimable);
        self.time(*newest_session);
        self.time(Some(*newest_mtime));
        self.time(*dir_mtime);
        self.strs(session_locks);
        self.indices(owners);
    }

    fn orphan(&mut self, o: &Orphan) {
        let Orphan {
            key,
            paths,
            usage,
            reclaimable,
            newest_mtime,
        } = o;
        self.key(key);
        self.paths(paths);
        self.by_kind(usage);
        self.u(*reclaimable);
        self.time(Some(*newest_mtime));
    }
}
