//! Classifies every entry of a target dir while it is walked, and tallies it per thread.
//!
//! Classification goes by position: an entry's owner (a unit, an incremental crate dir, a
//! profile, the target dir) follows from its parent's context and its own name, both cargo
//! layouts side by side:
//!
//! ```text
//! <profile>/.fingerprint/<pkg>-<H>/...        legacy unit H: fingerprint
//! <profile>/deps/<crate>-<H>[.ext]            legacy unit H: deps
//! <profile>/examples/<name>-<H>[.ext]         legacy unit H: deps
//! <profile>/build/<pkg>-<H>/...               legacy unit H: build script (compiled or run)
//! <profile>/build/<pkg>/<H>/{fingerprint,out,run}/...   new-layout unit H
//! <profile>/incremental/<crate>-<id>/s-.../   incremental crate dir
//! ```
//!
//! Files with several links are not counted here: they are collected and counted once, by
//! (device, inode), when the threads' tallies are merged.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::acc::{Acc, IncrAcc, Link, later};
use super::cache::Parsed;
use crate::os::safefs::{self, Meta};
use crate::os::walk::Visitor;
use cachekeeper_core::model::names;
use cachekeeper_core::model::{IncrementalDir, Kind, Layout, UnitKey, Usage};

/// Who an entry's bytes belong to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    Target,
    Profile(u16, Kind),
    Unit(UnitKey, Kind),
    /// An incremental crate dir, by its id in [`InventoryVisitor::crates`].
    Incr(u32),
}

/// What a directory is, known from its ancestors.
pub(super) enum Ctx {
    Root,
    /// Holds profile dirs (a target triple, rust-analyzer's nested target).
    Container,
    Profile(u16),
    Fingerprints(u16),
    /// `deps/` and `examples/`.
    Artifacts(u16),
    /// `deps/artifact/` (artifact dependencies).
    ArtifactDeps(u16),
    BuildRoot(u16),
    NewPkg(u16, Arc<str>),
    NewUnit(UnitKey),
    /// A unit's own build dir: `build/<pkg>-<H>/` (legacy) or `build/<pkg>/<H>/run/` (new). A
    /// build script's run keeps the files cargo reads on every build here.
    UnitBuildDir(UnitKey),
    Unit(UnitKey, Kind),
    Incremental(u16),
    IncrCrate(u32),
    IncrDeep(u32),
    ProfileKind(u16, Kind),
    Other,
}

impl Acc {
    /// Adds `usage` to its owner; `reclaim` says whether the bytes come back when the owner goes.
    pub(crate) fn account(&mut self, owner: &Owner, usage: &Usage, reclaim: bool) {
        match owner {
            Owner::Target => self.target.merge(usage),
            Owner::Profile(p, kind) => self
                .profiles
                .entry(*p)
                .or_default()
                .get_mut(*kind)
                .merge(usage),
            Owner::Unit(key, kind) => {
                let u = self.units.entry(*key).or_default();
                u.usage.get_mut(*kind).merge(usage);
                if reclaim {
                    u.reclaimable += usage.bytes;
                }
            }
            Owner::Incr(id) => {
                let i = self.incr.entry(*id).or_default();
                i.usage.merge(usage);
                if reclaim {
                    i.reclaimable += usage.bytes;
                }
            }
        }
    }
}

pub(super) struct InventoryVisitor<'c> {
    /// Parsed fingerprint files of earlier scans (the daemon's), if any.
    pub cache: Option<&'c super::cache::FingerprintCache>,
    pub profiles: HashMap<PathBuf, u16>,
    pub containers: Vec<PathBuf>,
    /// Incremental crate dirs met so far, `(profile, dir name)`, indexed by their id: files
    /// below them are tallied under that small id, not their name.
    pub crates: Mutex<Vec<(u16, Arc<str>)>>,
    /// Told what was walked, every few thousand entries.
    pub progress: Option<&'c crate::progress::Progress>,
    /// Incremental crate dirs an earlier walk of this target dir measured, by (profile, dir
    /// name): one whose own mtime is still the one recorded is taken as it was, not walked
    /// (rustc never changes a finished session; it adds and removes session dirs, which
    /// changes the crate dir). Those holding an inode shared with another part are left out.
    pub walked: Vec<HashMap<&'c str, &'c IncrementalDir>>,
    /// Units of an earlier walk taken as they were, by their top-level paths (see
    /// [`super::earlier::lend`]): those paths are passed over, not looked at.
    pub lent: &'c super::earlier::LentPaths<'c>,
}

/// Entries a walker thread counts before telling progress.
const REPORT_EVERY: u64 = 4096;

/// The largest fingerprint JSON we read (real ones are a few hundred bytes).
const MAX_FINGERPRINT_JSON: usize = 1 << 20;

#[derive(serde::Deserialize)]
struct FingerprintJson {
    rustc: u64,
    #[serde(default)]
    deps: Vec<Vec<serde_json::Value>>,
    #[serde(default)]
    profile: Option<u64>,
    #[serde(default)]
    compile_kind: Option<u64>,
}

impl InventoryVisitor<'_> {
    fn classify(
        &self,
        parent: &Ctx,
        dir_rel: &Path,
        name: &str,
        is_dir: bool,
    ) -> (Owner, Option<Ctx>) {
        use Kind::{Build, Deps, Fingerprint, Incremental, Other};
        let sub = |ctx: Ctx| if is_dir { Some(ctx) } else { None };
        let legacy = |p: u16, hash: u64| UnitKey {
            profile: p,
            hash,
            layout: Layout::Legacy,
        };
        match parent {
            Ctx::Root | Ctx::Container => {
                let rel = dir_rel.join(name);
                if let (true, Some(p)) = (is_dir, self.profiles.get(&rel)) {
                    (Owner::Profile(*p, Other), Some(Ctx::Profile(*p)))
                } else if is_dir && self.containers.contains(&rel) {
                    (Owner::Target, Some(Ctx::Container))
                } else {
                    (Owner::Target, sub(Ctx::Other))
                }
            }
            Ctx::Profile(p) => {
                let p = *p;
                match (name, is_dir) {
                    (".fingerprint", true) => {
                        (Owner::Profile(p, Fingerprint), sub(Ctx::Fingerprints(p)))
                    }
                    ("deps" | "examples", true) => {
                        (Owner::Profile(p, Deps), sub(Ctx::Artifacts(p)))
                    }
                    ("build", true) => (Owner::Profile(p, Build), sub(Ctx::BuildRoot(p))),
                    ("incremental", true) => {
                        (Owner::Profile(p, Incremental), sub(Ctx::Incremental(p)))
                    }
                    _ => (Owner::Profile(p, Other), sub(Ctx::ProfileKind(p, Other))),
                }
            }
            Ctx::Fingerprints(p) => match names::pkg_and_hash(name) {
                Some((_, h)) if is_dir => {
                    let key = legacy(*p, h);
                    (
                        Owner::Unit(key, Fingerprint),
                        sub(Ctx::Unit(key, Fingerprint)),
                    )
                }
                _ => (
                    Owner::Profile(*p, Fingerprint),
                    sub(Ctx::ProfileKind(*p, Fingerprint)),
                ),
            },
            Ctx::Artifacts(p) => {
                if let Some(h) = names::artifact_hash(name) {
                    let key = legacy(*p, h);
                    (Owner::Unit(key, Deps), sub(Ctx::Unit(key, Deps)))
                } else if name == "artifact" && is_dir {
                    (Owner::Profile(*p, Deps), sub(Ctx::ArtifactDeps(*p)))
                } else {
                    (Owner::Profile(*p, Other), sub(Ctx::ProfileKind(*p, Other)))
                }
            }
            Ctx::ArtifactDeps(p) => match names::pkg_and_hash(name) {
                Some((_, h)) if is_dir => {
                    let key = legacy(*p, h);
                    (Owner::Unit(key, Deps), sub(Ctx::Unit(key, Deps)))
                }
                _ => (Owner::Profile(*p, Deps), sub(Ctx::ProfileKind(*p, Deps))),
            },
            Ctx::BuildRoot(p) => match (names::pkg_and_hash(name), is_dir) {
                (Some((_, h)), true) => {
                    let key = legacy(*p, h);
                    (Owner::Unit(key, Build), sub(Ctx::UnitBuildDir(key)))
                }
                (None, true) => (
                    Owner::Profile(*p, Build),
                    Some(Ctx::NewPkg(*p, Arc::from(name))),
                ),
                _ => (Owner::Profile(*p, Build), None),
            },
            Ctx::NewPkg(p, _) => match names::hex16(name) {
                Some(h) if is_dir => {
                    let key = UnitKey {
                        profile: *p,
                        hash: h,
                        layout: Layout::New,
                    };
                    (Owner::Unit(key, Other), Some(Ctx::NewUnit(key)))
                }
                _ => (Owner::Profile(*p, Build), sub(Ctx::ProfileKind(*p, Build))),
            },
            Ctx::NewUnit(key) => {
                let kind = match name {
                    "fingerprint" => Fingerprint,
                    "out" => Deps,
                    "run" => return (Owner::Unit(*key, Build), sub(Ctx::UnitBuildDir(*key))),
                    _ => Other,
                };
                (Owner::Unit(*key, kind), sub(Ctx::Unit(*key, kind)))
            }
            Ctx::UnitBuildDir(key) => (Owner::Unit(*key, Build), sub(Ctx::Unit(*key, Build))),
            Ctx::Unit(key, kind) => (Owner::Unit(*key, *kind), sub(Ctx::Unit(*key, *kind))),
            Ctx::Incremental(p) => match names::incremental_crate(name) {
                Some(_) if is_dir => {
                    let mut crates = self
                        .crates
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let id = u32::try_from(crates.len()).unwrap_or(u32::MAX);
                    crates.push((*p, Arc::from(name)));
                    (Owner::Incr(id), Some(Ctx::IncrCrate(id)))
                }
                _ => (
                    Owner::Profile(*p, Incremental),
                    sub(Ctx::ProfileKind(*p, Incremental)),
                ),
            },
            Ctx::IncrCrate(id) | Ctx::IncrDeep(id) => (Owner::Incr(*id), sub(Ctx::IncrDeep(*id))),
            Ctx::ProfileKind(p, kind) => {
                (Owner::Profile(*p, *kind), sub(Ctx::ProfileKind(*p, *kind)))
            }
            Ctx::Other => (Owner::Target, sub(Ctx::Other)),
        }
    }

    /// Reads what a fingerprint file says into its unit.
    fn fingerprint_file(
        &self,
        acc: &mut Acc,
        key: UnitKey,
        dirfd: BorrowedFd<'_>,
        name: &str,
        meta: &Meta,
    ) {
        let unit = acc.units.entry(key).or_default();
        unit.last_used = later(
            unit.last_used,
            names::use_time(name, meta.atime, meta.mtime, false),
        );
        unit.last_built = later(unit.last_built, meta.mtime);
        if name == "invoked.timestamp" {
            unit.invoked = later(unit.invoked, meta.mtime);
            return;
        }
        let json = name.strip_suffix(".json");
        let hash = names::fingerprint_target(name).is_some();
        if json.is_none() && !hash {
            return;
        }
        let read = || parse_fingerprint(dirfd, name, json.is_some());
        let parsed = match self.cache {
            Some(cache) => cache.get_or_read(meta, read),
            None => read(),
        };
        match parsed {
            Parsed::Json {
                rustc,
                deps,
                profile,
                compile_kind,
            } => {
                unit.rustc.push(rustc);
                unit.deps.extend(deps);
                unit.profile_hash = unit.profile_hash.or(profile);
                unit.compile_kind = unit.compile_kind.or(compile_kind);
            }
            Parsed::Hash(v) => unit.fingerprints.push(v),
            Parsed::Unreadable => unit.unreadable += 1,
        }
        unit.build_script |= names::is_build_script_file(json.unwrap_or(name));
        if hash {
            unit.targets.push(name.to_string());
            unit.finished = later(unit.finished, meta.mtime);
        }
    }
}

/// Reads and parses one fingerprint file (`O_NOATIME`, no symlink followed).
fn parse_fingerprint(dirfd: BorrowedFd<'_>, name: &str, json: bool) -> Parsed {
    if json {
        safefs::read_small_at(dirfd, OsStr::new(name), MAX_FINGERPRINT_JSON)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<FingerprintJson>(&bytes).ok())
            .map_or(Parsed::Unreadable, |fp| Parsed::Json {
                rustc: fp.rustc,
                // Each dependency is [package id, name, public, fingerprint hash]; only the
                // last element is needed, and it is last in every cargo version.
                deps: fp.deps.iter().filter_map(|d| d.last()?.as_u64()).collect(),
                profile: fp.profile,
                compile_kind: fp.compile_kind,
            })
    } else {
        safefs::read_small_at(dirfd, OsStr::new(name), 64)
            .ok()
            .and_then(|b| names::fingerprint_value(&b))
            .map_or(Parsed::Unreadable, Parsed::Hash)
    }
}

impl Visitor for InventoryVisitor<'_> {
    type Ctx = Ctx;
    type Acc = Acc;

    fn new_acc(&self) -> Acc {
        Acc::default()
    }

    fn entry(
        &self,
        acc: &mut Acc,
        parent: &Ctx,
        dir_rel: &Path,
        dirfd: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
    ) -> Option<Ctx> {
        let is_dir = meta.kind == safefs::Kind::Dir;
        if let Some(p) = self.progress {
            acc.unreported.0 += 1;
            acc.unreported.1 += meta.bytes;
            if acc.unreported.0 >= REPORT_EVERY {
                let (files, bytes) = std::mem::take(&mut acc.unreported);
                p.walked(files, bytes);
            }
        }
        // Names that are not UTF-8 are not cargo's: account for them, never interpret them.
        let (owner, ctx) = match name.to_str() {
            Some(n) => self.classify(parent, dir_rel, n, is_dir),
            None => match parent {
                Ctx::Unit(key, kind) => (Owner::Unit(*key, *kind), None),
                Ctx::UnitBuildDir(key) => (Owner::Unit(*key, Kind::Build), None),
                Ctx::IncrCrate(id) | Ctx::IncrDeep(id) => (Owner::Incr(*id), None),
                _ => (Owner::Target, None),
            },
        };
        let name_str = name.to_str().unwrap_or("");
        if let (Owner::Incr(id), Ctx::Incremental(p), true) = (&owner, parent, is_dir)
            && let Some(d) = self
                .walked
                .get(usize::from(*p))
                .and_then(|w| w.get(name_str))
            && d.dir_mtime == Some(meta.mtime)
        {
            acc.incr.insert(*id, IncrAcc::from_walked(d));
            return None;
        }

        // Top-level paths: where a unit or incremental dir begins.
        match (&owner, parent) {
            (Owner::Unit(..), Ctx::Unit(..) | Ctx::NewUnit(..) | Ctx::UnitBuildDir(..)) => {}
            (Owner::Unit(key, kind), _) => {
                let u = acc.units.entry(*key).or_default();
                let rel = dir_rel.join(name);
                match (parent, kind) {
                    (Ctx::Fingerprints(_), _) => {
                        u.package = names::pkg_and_hash(name_str).map(|(p, _)| p.to_string());
                        u.fingerprint_dir = Some(rel.clone());
                    }
                    (Ctx::NewPkg(_, pkg), _) => {
                        u.package = Some(pkg.to_string());
                        u.fingerprint_dir = Some(rel.join("fingerprint"));
                    }
                    _ => {}
                }
                u.paths.push(rel);
            }
            (Owner::Incr(id), Ctx::Incremental(_)) => {
                let i = acc.incr.entry(*id).or_default();
                i.path = Some(dir_rel.join(name));
                i.dir_mtime = Some(meta.mtime);
            }
            _ => {}
        }

        match (&owner, parent) {
            (Owner::Unit(key, Kind::Fingerprint), Ctx::Unit(..)) if !is_dir => {
                self.fingerprint_file(acc, *key, dirfd, name_str, meta);
            }
            // A compile's outputs: the metadata a pipelined build emits first, and what
            // kind of crate it was (a proc-macro is a dylib).
            (Owner::Unit(key, Kind::Deps), _) if !is_dir => {
                let unit = acc.units.entry(*key).or_default();
                if name_str.ends_with(".rmeta") {
                    unit.metadata_at = later(unit.metadata_at, meta.mtime);
                } else if [".so", ".dylib", ".dll"]
                    .iter()
                    .any(|e| name_str.ends_with(e))
                {
                    unit.proc_macro = true;
                }
            }
            // A build script's run: cargo stamps its start in the run dir.
            (Owner::Unit(key, _), Ctx::UnitBuildDir(..))
                if !is_dir && name_str == "invoked.timestamp" =>
            {
                let unit = acc.units.entry(*key).or_default();
                unit.invoked = later(unit.invoked, meta.mtime);
            }
            (Owner::Unit(key, _), Ctx::UnitBuildDir(..))
                if !is_dir && names::is_run_use_signal(name_str) =>
            {
                let unit = acc.units.entry(*key).or_default();
                unit.last_used = later(
                    unit.last_used,
                    names::use_time(name_str, meta.atime, meta.mtime, true),
                );
                unit.run_dir = Some(dir_rel.to_path_buf());
            }
            (Owner::Incr(id), Ctx::IncrCrate(..)) => {
                let i = acc.incr.entry(*id).or_default();
                if is_dir {
                    if let Some(t) = names::session_time(name_str) {
                        i.newest_session = later(i.newest_session, t);
                    }
                } else if name_str.ends_with(".lock") {
                    i.session_locks.push(name_str.to_string());
                }
            }
            _ => {}
        }
        match &owner {
            Owner::Unit(key, _) => {
                let u = acc.units.entry(*key).or_default();
                u.newest_mtime = later(u.newest_mtime, meta.mtime);
            }
            Owner::Incr(id) => {
                let i = acc.incr.entry(*id).or_default();
                i.newest_mtime = later(i.newest_mtime, meta.mtime);
            }
            _ => {}
        }

        let usage = Usage::file(meta.bytes, meta.apparent);
        if !is_dir && meta.nlink > 1 {
            acc.links.push(Link {
                dev: meta.dev,
                ino: meta.ino,
                nlink: meta.nlink,
                usage,
                owner,
                rel: dir_rel.join(name),
            });
        } else {
            acc.account(&owner, &usage, true);
        }
        ctx
    }

    fn skip(&self, acc: &mut Acc, parent: &Ctx, dir_rel: &Path, name: &OsStr) -> bool {
        // A unit's top-level paths are never inside a unit's or an incremental crate's dir.
        if self.lent.is_empty()
            || matches!(
                parent,
                Ctx::Unit(..)
                    | Ctx::NewUnit(..)
                    | Ctx::UnitBuildDir(..)
                    | Ctx::IncrCrate(..)
                    | Ctx::IncrDeep(..)
            )
        {
            return false;
        }
        let found = self
            .lent
            .get(&(dir_rel.as_os_str().as_bytes(), name.as_bytes()));
        match found {
            Some(id) => {
                acc.lent_met.push(*id);
                true
            }
            None => false,
        }
    }

    fn error(&self, acc: &mut Acc, rel: &Path, err: &io::Error) {
        acc.errors.record(rel, err);
    }

    fn mount_point(&self, acc: &mut Acc, _parent: &Ctx, rel: &Path) {
        acc.errors.mount_point(rel);
    }
}
