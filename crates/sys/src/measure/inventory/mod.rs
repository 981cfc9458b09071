//! What a target dir holds: its profiles, units, incremental dirs and orphaned outputs,
//! measured in one parallel walk.
//!
//! A *unit* is what cargo compiles once and reuses: one crate target in one profile with one
//! set of features and flags, named by a 16-hex hash `H`. Its files are spread over the
//! profile (fingerprint dir, `deps/` outputs, `build/` dirs, uplifted hardlinks in the profile
//! dir) or, in cargo's new layout, gathered in `build/<pkg>/<H>/`. The inventory gathers them
//! so a unit is always removed whole.
//!
//! Besides sizes it records what the policy needs: when each unit was last used (the newest
//! access or write of its fingerprint files; cargo reads every unit's fingerprint on every
//! build that involves it), which rustc built it, which units it depends on, and which
//! incremental dirs belong to it.
//!
//! Invariants:
//! - Scanning changes nothing: files are read with `O_NOATIME` and never written.
//! - Only a dir carrying cargo's `CACHEDIR.TAG` is scanned.
//! - Sizes are allocated bytes (`du`), with every inode counted once.

mod acc;
mod cache;
mod earlier;
mod profiles;
mod visitor;

pub use cache::FingerprintCache;
pub(crate) use earlier::Earlier;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::os::safefs::{self, Meta};
use acc::Acc;
use earlier::{lend, take_lent, walked_incremental};
use profiles::{find_profiles, probe_lock, read_rustc_vv};
use visitor::{Ctx, InventoryVisitor, Owner};

use cachekeeper_core::model::names;
use cachekeeper_core::model::{
    ByKind, IncrementalDir, Layout, Orphan, Part, Profile, ProfileState, SharedInode, TargetDir,
    Unit, UnitKey, Usage,
};

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a cargo target dir (no CACHEDIR.TAG written by cargo)")]
    NotTagged { path: PathBuf },
}

/// Tolerance when matching an incremental session's start to a unit's compile: file times
/// come from the kernel's coarse clock, session names from the precise one.
const SESSION_SLACK: Duration = Duration::from_secs(2);

/// Measures and understands one target dir.
pub fn scan(path: &Path, threads: usize) -> Result<TargetDir, ScanError> {
    scan_cached(path, threads, None, None, None)
}

/// [`scan`], reading only the fingerprint files `cache` has not seen in this version, telling
/// `progress` what it walks, and taking from an earlier walk of this dir (`earlier`) the
/// incremental crate dirs that did not change since, and the units that did not.
pub(crate) fn scan_cached(
    path: &Path,
    threads: usize,
    cache: Option<&FingerprintCache>,
    progress: Option<&crate::progress::Progress>,
    earlier: Option<Earlier>,
) -> Result<TargetDir, ScanError> {
    let open_err = |source| ScanError::Open {
        path: path.to_path_buf(),
        source,
    };
    let root = safefs::open_dir(path).map_err(open_err)?;
    if !safefs::is_cargo_tagged(root.as_fd()) {
        return Err(ScanError::NotTagged {
            path: path.to_path_buf(),
        });
    }
    let root_meta = safefs::stat_fd(root.as_fd()).map_err(open_err)?;
    let profile_rels = find_profiles(root.as_fd());
    let rustc_vv = read_rustc_vv(root.as_fd());

    let mut containers: Vec<PathBuf> = Vec::new();
    for rel in &profile_rels {
        let mut a = rel.parent();
        while let Some(p) = a.filter(|p| !p.as_os_str().is_empty()) {
            containers.push(p.to_path_buf());
            a = p.parent();
        }
    }
    let (mut previous, changed_units) = match earlier {
        Some(e) => (Some(e.walk), e.changed_units),
        None => (None, None),
    };
    let lent = match (&previous, &changed_units) {
        (Some(p), Some(changed)) => lend(p, changed, &profile_rels),
        _ => earlier::Lent::default(),
    };
    let visitor = InventoryVisitor {
        cache,
        profiles: profile_rels
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), u16::try_from(i).unwrap_or(u16::MAX)))
            .collect(),
        containers,
        crates: std::sync::Mutex::new(Vec::new()),
        progress: progress.filter(|p| p.is_shown()),
        walked: previous
            .as_ref()
            .map(|t| walked_incremental(t, &profile_rels))
            .unwrap_or_default(),
        lent: &lent.paths,
    };
    let walk_root = rustix::io::fcntl_dupfd_cloexec(&root, 0).map_err(|e| open_err(e.into()))?;
    let accs = crate::os::walk::walk(&visitor, walk_root, Ctx::Root, threads);

    let crates = visitor
        .crates
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lent_units = lent.units;
    let kept = previous
        .as_mut()
        .map(|p| take_lent(p, &lent_units, &accs))
        .unwrap_or_default();
    let mut target = assemble(
        path,
        &root_meta,
        &profile_rels,
        &crates,
        accs,
        rustc_vv,
        kept,
    );
    for profile in &mut target.profiles {
        profile.state = probe_lock(root.as_fd(), &profile.rel);
    }
    Ok(target)
}

/// A target dir measured earlier, taken for now (nothing changed in it since, as far as the
/// daemon's watches tell): its build locks are probed again, and its compile times are left
/// to be worked out again with the other dirs'.
pub fn refresh(target: &mut TargetDir) {
    if let Ok(root) = safefs::open_dir(&target.path) {
        for profile in &mut target.profiles {
            profile.state = probe_lock(root.as_fd(), &profile.rel);
        }
    }
    for u in &mut target.units {
        u.timing = None;
    }
}

fn assemble(
    path: &Path,
    root_meta: &Meta,
    profile_rels: &[PathBuf],
    crates: &[(u16, std::sync::Arc<str>)],
    accs: Vec<Acc>,
    rustc_vv: Option<String>,
    kept: Vec<Unit>,
) -> TargetDir {
    let mut all = Acc::default();
    // Sized once: grown by doubling, the maps would hash every key again at each step.
    all.units.reserve(accs.iter().map(|a| a.units.len()).sum());
    all.incr.reserve(accs.iter().map(|a| a.incr.len()).sum());
    for a in accs {
        for (k, u) in a.units {
            all.units.entry(k).or_default().merge(u);
        }
        for (k, i) in a.incr {
            match all.incr.entry(k) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(i),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        for (p, u) in a.profiles {
            all.profiles.entry(p).or_default().merge(&u);
        }
        all.target.merge(&a.target);
        all.links.extend(a.links);
        all.errors.merge(a.errors);
    }
    // Units taken as they were join the walked ones as they are, unless the walk met more of
    // theirs (then they are added up like a walk's).
    let kept_units = kept.len();
    let mut kept_whole = Vec::with_capacity(kept.len());
    for u in kept {
        match all.units.get_mut(&u.key) {
            Some(walked) => walked.merge(acc::UnitAcc::from_unit(u)),
            None => kept_whole.push(u),
        }
    }
    all.target
        .merge(&Usage::file(root_meta.bytes, root_meta.apparent));
    let shared_links = resolve_links(&mut all);

    let epoch = SystemTime::UNIX_EPOCH;
    // Sized once: the daemon holds these for as long as it runs (a vector grown by doubling
    // keeps up to half its capacity unused: 3 MiB of 8 at 10,000 units).
    let mut units = Vec::with_capacity(all.units.len() + kept_whole.len());
    let mut orphans = Vec::new();
    let mut keys: Vec<UnitKey> = all.units.keys().copied().collect();
    keys.sort();
    for key in keys {
        let mut u = all.units.remove(&key).expect("key taken from the map");
        // Fingerprint dir first: cargo must never see a fingerprint whose outputs are gone.
        u.paths.sort();
        u.paths.dedup();
        let Some(fp_dir) = u.fingerprint_dir.clone().filter(|_| !u.targets.is_empty()) else {
            orphans.push(Orphan {
                key,
                paths: u.paths,
                usage: u.usage,
                reclaimable: u.reclaimable,
                newest_mtime: u.newest_mtime.unwrap_or(epoch),
            });
            continue;
        };
        if let Some(i) = u.paths.iter().position(|p| fp_dir.starts_with(p)) {
            let first = u.paths.remove(i);
            u.paths.insert(0, first);
        }
        if u.build_script && key.layout == Layout::New {
            // New layout: a build script's `out/` is its OUT_DIR or binary, not a crate output.
            let deps = std::mem::take(&mut u.usage.deps);
            u.usage.build.merge(&deps);
        }
        let last_built = u.last_built.unwrap_or(epoch);
        // Grown an entry at a time by the walkers, most of these hold one to three.
        u.targets.shrink_to_fit();
        u.fingerprints.shrink_to_fit();
        u.rustc.shrink_to_fit();
        u.deps.shrink_to_fit();
        u.paths.shrink_to_fit();
        units.push(Unit {
            key,
            package: u.package.unwrap_or_default(),
            targets: u.targets,
            fingerprints: u.fingerprints,
            rustc: u.rustc,
            deps: u.deps,
            profile_hash: u.profile_hash,
            compile_kind: u.compile_kind,
            dependents: Vec::new(),
            build_script: u.build_script,
            paths: u.paths,
            fingerprint_dir: fp_dir,
            run_dir: u.run_dir,
            usage: u.usage,
            reclaimable: u.reclaimable,
            last_used: u.last_used.unwrap_or(last_built),
            last_built,
            invoked: u.invoked,
            finished: u.finished,
            metadata_at: u.metadata_at,
            proc_macro: u.proc_macro,
            timing: None,
            unreadable: u.unreadable,
        });
    }
    if !kept_whole.is_empty() {
        units = merge_by_key(units, kept_whole);
    }
    link_dependents(&mut units);

    let mut incremental: Vec<IncrementalDir> = all
        .incr
        .into_iter()
        .filter_map(|(id, i)| {
            let (p, name) = crates.get(usize::try_from(id).ok()?)?;
            Some(IncrementalDir {
                profile: *p,
                crate_name: names::incremental_crate(name)?.to_string(),
                name: name.to_string(),
                path: i.path?,
                usage: i.usage,
                reclaimable: i.reclaimable,
                newest_session: i.newest_session,
                newest_mtime: i.newest_mtime.unwrap_or(epoch),
                dir_mtime: i.dir_mtime,
                session_locks: i.session_locks,
                owners: Vec::new(),
            })
        })
        .collect();
    incremental.shrink_to_fit();
    orphans.shrink_to_fit();
    // By path: profiles are numbered in path order, and each dir is `<profile>/incremental/<name>`.
    incremental.sort_unstable_by(|a, b| (a.profile, &a.name).cmp(&(b.profile, &b.name)));
    match_incremental_owners(&units, &mut incremental);
    let shared = map_shared(
        shared_links,
        &units,
        &orphans,
        &incremental,
        crates,
        profile_rels,
    );

    let mut profiles: Vec<Profile> = profile_rels
        .iter()
        .map(|rel| Profile {
            rel: rel.clone(),
            layouts: Vec::new(),
            usage: ByKind::default(),
            state: ProfileState::Idle,
        })
        .collect();
    for (p, u) in &all.profiles {
        if let Some(profile) = profiles.get_mut(usize::from(*p)) {
            profile.usage.merge(u);
        }
    }
    for u in &units {
        let profile = &mut profiles[usize::from(u.key.profile)];
        profile.usage.merge(&u.usage);
        if !profile.layouts.contains(&u.key.layout) {
            profile.layouts.push(u.key.layout);
        }
    }
    for o in &orphans {
        profiles[usize::from(o.key.profile)].usage.merge(&o.usage);
    }
    for i in &incremental {
        profiles[usize::from(i.profile)]
            .usage
            .incremental
            .merge(&i.usage);
    }
    let mut usage = ByKind::default();
    usage.other.merge(&all.target);
    for p in &mut profiles {
        p.layouts.sort();
        usage.merge(&p.usage);
    }
    TargetDir {
        path: path.to_path_buf(),
        dev: root_meta.dev,
        ino: root_meta.ino,
        profiles,
        units,
        incremental,
        orphans,
        shared,
        usage,
        errors: all.errors,
        rustc_vv,
        // Set by the measurement, which reads cargo's config, the mount and its filesystem.
        jobs: 1,
        signal: cachekeeper_core::model::Signal::default(),
        fs: cachekeeper_core::model::FsId::default(),
        kept_units,
    }
}

/// Names the owners of shared inodes by their index in the assembled lists.
/// Two lists of units sorted by key, as one (a unit is 500 bytes: a merge moves each once,
/// where sorting the two appended moved them many times).
fn merge_by_key(a: Vec<Unit>, b: Vec<Unit>) -> Vec<Unit> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let mut b = b.into_iter().peekable();
    for u in a {
        while let Some(k) = b.next_if(|k| k.key < u.key) {
            out.push(k);
        }
        out.push(u);
    }
    out.extend(b);
    if !out.is_sorted_by_key(|u| u.key) {
        out.sort_by_key(|u| u.key);
    }
    out
}

fn map_shared(
    links: Vec<(u64, Vec<Owner>)>,
    units: &[Unit],
    orphans: &[Orphan],
    incremental: &[IncrementalDir],
    crates: &[(u16, std::sync::Arc<str>)],
    profile_rels: &[PathBuf],
) -> Vec<SharedInode> {
    let unit_idx: HashMap<UnitKey, Part> = units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.key, Part::Unit(i)))
        .chain(
            orphans
                .iter()
                .enumerate()
                .map(|(i, o)| (o.key, Part::Orphan(i))),
        )
        .collect();
    let incr_idx: HashMap<PathBuf, usize> = incremental
        .iter()
        .enumerate()
        .map(|(i, d)| (d.path.clone(), i))
        .collect();
    links
        .into_iter()
        .filter_map(|(bytes, owners)| {
            let owners = owners
                .iter()
                .map(|o| match o {
                    Owner::Unit(key, _) => unit_idx.get(key).copied(),
                    Owner::Incr(id) => {
                        let (p, name) = crates.get(usize::try_from(*id).ok()?)?;
                        let path = profile_rels
                            .get(usize::from(*p))?
                            .join("incremental")
                            .join(&**name);
                        incr_idx.get(&path).map(|i| Part::Incremental(*i))
                    }
                    _ => None,
                })
                .collect::<Option<Vec<Part>>>()?;
            Some(SharedInode { bytes, owners })
        })
        .collect()
}

/// Counts each multiply-linked inode once and ties uplifted links to their unit.
///
/// The inode's bytes go to one owner: a unit if any link is in one, else an incremental dir,
/// else the profile or target dir. Links in a profile dir itself (cargo's uplifted binaries
/// and libraries) are added to that unit's paths so they go with it. Removing the owner
/// gives the bytes back only if every link goes with it; when the links are spread over
/// several units or incremental dirs the inode is returned as shared, freed when all go;
/// a link anywhere else (outside the target dir, or loose in it) keeps it forever.
fn resolve_links(all: &mut Acc) -> Vec<(u64, Vec<Owner>)> {
    let mut by_inode: HashMap<(u64, u64), Vec<acc::Link>> = HashMap::new();
    for l in std::mem::take(&mut all.links) {
        by_inode.entry((l.dev, l.ino)).or_default().push(l);
    }
    let rank = |o: &Owner| match o {
        Owner::Unit(..) => 0,
        Owner::Incr(..) => 1,
        Owner::Profile(..) => 2,
        Owner::Target => 3,
    };
    let mut shared = Vec::new();
    for (_, mut links) in by_inode {
        links.sort_by(|a, b| rank(&a.owner).cmp(&rank(&b.owner)).then(a.rel.cmp(&b.rel)));
        let usage = links[0].usage;
        let mut owners: Vec<Owner> = Vec::new();
        let mut loose = Vec::new();
        for l in &links {
            match &l.owner {
                Owner::Unit(..) | Owner::Incr(..) => {
                    if !owners.iter().any(|o| same_owner(o, &l.owner)) {
                        owners.push(l.owner.clone());
                    }
                }
                Owner::Profile(..) | Owner::Target => loose.push(l.rel.clone()),
            }
        }
        let Some(primary) = owners.first().cloned() else {
            all.account(&links[0].owner, &usage, false);
            continue;
        };
        let mut reclaimable = links.len() as u64 == links[0].nlink;
        if let Owner::Unit(key, _) = &primary {
            all.units.entry(*key).or_default().paths.extend(loose);
        } else if !loose.is_empty() {
            reclaimable = false;
        }
        all.account(&primary, &usage, reclaimable && owners.len() == 1);
        if reclaimable && owners.len() > 1 {
            shared.push((usage.bytes, owners));
        }
    }
    shared
}

fn same_owner(a: &Owner, b: &Owner) -> bool {
    match (a, b) {
        (Owner::Unit(x, _), Owner::Unit(y, _)) => x == y,
        (Owner::Incr(a), Owner::Incr(b)) => a == b,
        _ => false,
    }
}

/// Fills in `dependents` from the fingerprint values each unit's JSON names.
fn link_dependents(units: &mut [Unit]) {
    let mut by_fingerprint: HashMap<u64, usize> = HashMap::new();
    for (i, u) in units.iter().enumerate() {
        for f in &u.fingerprints {
            by_fingerprint.insert(*f, i);
        }
    }
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for (i, u) in units.iter().enumerate() {
        for d in &u.deps {
            if let Some(&j) = by_fingerprint.get(d)
                && j != i
                && !dependents[j].contains(&i)
            {
                dependents[j].push(i);
            }
        }
    }
    for (u, d) in units.iter_mut().zip(dependents) {
        u.dependents = d;
    }
}

/// An incremental crate dir belongs to the unit whose compile created its newest session:
/// same profile, same crate name, and the session started between the unit's
/// `invoked.timestamp` and the write of its fingerprint. A dir no unit claims was left by a
/// superseded crate id (rustc never removes those). Ambiguous matches keep every candidate as
/// owner, so the dir goes only when all of them go.
fn match_incremental_owners(units: &[Unit], dirs: &mut [IncrementalDir]) {
    // Crate names borrowed where a target's name has no `-` (most): this runs at every refresh.
    let mut by_crate: HashMap<(u16, Cow<str>), Vec<usize>> = HashMap::with_capacity(units.len());
    for (i, u) in units.iter().enumerate() {
        for t in u
            .targets
            .iter()
            .filter_map(|t| names::fingerprint_target(t))
        {
            let c = if t.contains('-') {
                Cow::Owned(names::crate_name(t))
            } else {
                Cow::Borrowed(t)
            };
            let list = by_crate.entry((u.key.profile, c)).or_default();
            if !list.contains(&i) {
                list.push(i);
            }
        }
    }
    for d in dirs {
        let Some(session) = d.newest_session else {
            continue;
        };
        let Some(candidates) = by_crate.get(&(d.profile, Cow::Borrowed(d.crate_name.as_str())))
        else {
            continue;
        };
        d.owners = candidates
            .iter()
            .copied()
            .filter(|&i| {
                let u = &units[i];
                match (u.invoked, u.finished) {
                    (Some(start), Some(end)) => {
                        session + SESSION_SLACK >= start && session <= end + SESSION_SLACK
                    }
                    _ => false,
                }
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cargo-shaped target dir: one profile, units `foo` and `bar`, each with an incremental
    /// crate dir holding one session of a few files.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::write(
            root.join("CACHEDIR.TAG"),
            format!(
                "{}\n# This file is a cache directory tag created by cargo.\n",
                safefs::CACHEDIR_SIGNATURE
            ),
        )
        .unwrap();
        let debug = root.join("debug");
        for d in [".fingerprint", "deps", "incremental"] {
            std::fs::create_dir_all(debug.join(d)).unwrap();
        }
        std::fs::write(debug.join(".cargo-lock"), "").unwrap();
        for (name, hash) in [("foo", "0123456789abcdef"), ("bar", "fedcba9876543210")] {
            let fp = debug.join(".fingerprint").join(format!("{name}-{hash}"));
            std::fs::create_dir_all(&fp).unwrap();
            std::fs::write(fp.join(format!("lib-{name}")), "0011223344556677").unwrap();
            std::fs::write(fp.join(format!("dep-lib-{name}")), "dep-info").unwrap();
            std::fs::write(fp.join("invoked.timestamp"), "").unwrap();
            std::fs::write(
                debug.join("deps").join(format!("lib{name}-{hash}.rlib")),
                [0u8; 5000],
            )
            .unwrap();
            let session = debug
                .join("incremental")
                .join(format!("{name}-1abc"))
                .join("s-ha2x3kqo6w-1xyz-0123abcd");
            std::fs::create_dir_all(&session).unwrap();
            for i in 0..5 {
                std::fs::write(session.join(format!("{i}.o")), [1u8; 3000]).unwrap();
            }
        }
        t
    }

    /// An earlier walk whose units may all have changed: only its incremental dirs are lent.
    fn earlier(walk: &TargetDir) -> Earlier {
        Earlier {
            walk: walk.clone(),
            changed_units: None,
        }
    }

    fn incr<'t>(t: &'t TargetDir, name: &str) -> &'t IncrementalDir {
        t.incremental.iter().find(|d| d.crate_name == name).unwrap()
    }

    #[test]
    fn a_walk_takes_untouched_incremental_dirs_as_an_earlier_walk_found_them() {
        let t = tree();
        let full = scan(t.path(), 1).unwrap();
        assert_eq!(full.incremental.len(), 2);
        assert!(incr(&full, "foo").dir_mtime.is_some());
        // Nothing changed: the same numbers, with or without the earlier walk.
        let again = scan_cached(t.path(), 1, None, None, Some(earlier(&full))).unwrap();
        assert_eq!(again.usage.total(), full.usage.total());
        for name in ["foo", "bar"] {
            assert_eq!(incr(&again, name).usage, incr(&full, name).usage);
        }
        // A file rewritten inside a finished session (rustc never does this) does not change
        // the crate dir: the walk takes foo as it was, which shows it was not walked.
        let session = t
            .path()
            .join("debug/incremental/foo-1abc/s-ha2x3kqo6w-1xyz-0123abcd");
        std::fs::write(session.join("0.o"), [1u8; 30_000]).unwrap();
        let taken = scan_cached(t.path(), 1, None, None, Some(earlier(&full))).unwrap();
        assert_eq!(incr(&taken, "foo").usage, incr(&full, "foo").usage);
        assert!(
            incr(&scan(t.path(), 1).unwrap(), "foo").usage.bytes > incr(&full, "foo").usage.bytes
        );
        // A new session (what a compile does) changes bar's crate dir: bar is walked again.
        let newer = t
            .path()
            .join("debug/incremental/bar-1abc/s-ha2x4aaaaa-1xyz-4567abcd");
        std::fs::create_dir_all(&newer).unwrap();
        std::fs::write(newer.join("0.o"), [1u8; 8000]).unwrap();
        let walked = scan_cached(t.path(), 1, None, None, Some(earlier(&full))).unwrap();
        assert_eq!(
            incr(&walked, "bar").usage.files,
            incr(&full, "bar").usage.files + 2
        );
        assert!(incr(&walked, "bar").newest_session > incr(&full, "bar").newest_session);
    }
}
