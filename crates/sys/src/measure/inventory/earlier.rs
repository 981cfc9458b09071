//! What an earlier walk of a target dir lends the next one (the daemon's index, kept current
//! by inotify): the incremental crate dirs no compile touched since, and the units no build
//! wrote, created or removed since. A walk takes those as they were, without looking at their
//! files.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::acc::Acc;
use cachekeeper_core::model::{IncrementalDir, Part, TargetDir, Unit};

/// An earlier walk of a target dir, and what changed in it since.
pub(crate) struct Earlier {
    pub walk: TargetDir,
    /// `Some`: the only units (by fingerprint dir, relative to the target dir) written, created
    /// or removed since, as the daemon's watches saw; the other units are taken as they were.
    /// `None`: any unit may have changed.
    pub changed_units: Option<HashSet<PathBuf>>,
}

/// The units of an earlier walk a walk takes as they were: for each unit of the earlier walk,
/// its profile's index in this walk's profiles if it is lent; and the lent units' top-level
/// paths, by (dir, name) in bytes (looked up without allocating or splitting into components),
/// each with its unit's index: the walk passes over those.
#[derive(Default)]
pub(super) struct Lent<'a> {
    pub units: Vec<Option<u16>>,
    pub paths: LentPaths<'a>,
}

/// See [`Lent`]: (dir, name) → the unit's index in the earlier walk.
pub(super) type LentPaths<'a> = HashMap<(&'a [u8], &'a [u8]), u32>;

/// Which units of an earlier walk a walk takes as they were: those no build wrote, created or
/// removed since (`changed` names the ones that changed, by fingerprint dir). Never lent,
/// walked again: a unit sharing an inode with another part, one with a path not named by its
/// hash (an uplifted link another unit's build may take over), one with an unreadable
/// fingerprint file, and every unit when the earlier walk met errors (what it measured may be
/// short). One pass over the units: at 10,000 a refresh's cost is mostly touching them.
pub(super) fn lend<'a>(
    previous: &'a TargetDir,
    changed: &HashSet<PathBuf>,
    profile_rels: &[PathBuf],
) -> Lent<'a> {
    let mut out = Lent::default();
    let e = &previous.errors;
    if e.vanished + e.serious() > 0 || !e.mount_points.is_empty() {
        return out;
    }
    let shared = sharing(previous, |o| match o {
        Part::Unit(i) => Some(*i),
        _ => None,
    });
    let profiles: Vec<Option<u16>> = previous
        .profiles
        .iter()
        .map(|p| {
            let i = profile_rels.iter().position(|r| *r == p.rel)?;
            u16::try_from(i).ok()
        })
        .collect();
    let changed: HashSet<&[u8]> = changed.iter().map(|p| p.as_os_str().as_bytes()).collect();
    // Sized for what most units hold (a fingerprint dir and three outputs): a map grown by
    // doubling hashes every key again at each step.
    out.paths.reserve(previous.units.len() * 4);
    out.units = Vec::with_capacity(previous.units.len());
    for (i, u) in previous.units.iter().enumerate() {
        let profile = profiles.get(usize::from(u.key.profile)).copied().flatten();
        let hash = hex16(u.key.hash);
        let own = |p: &PathBuf| split(p).1.windows(16).any(|w| w == hash);
        let lent = profile.is_some()
            && !shared.contains(&i)
            && u.unreadable == 0
            && !changed.contains(u.fingerprint_dir.as_os_str().as_bytes())
            && u.paths.iter().all(own);
        out.units.push(profile.filter(|_| lent));
        if lent {
            let id = u32::try_from(i).unwrap_or(u32::MAX);
            for p in &u.paths {
                out.paths.insert(split(p), id);
            }
        }
    }
    out
}

/// The parts of an earlier walk (units or incremental dirs, as `pick` says) that share an inode
/// with another: never lent, as the sharing is only seen by walking every link.
fn sharing(previous: &TargetDir, pick: impl Fn(&Part) -> Option<usize>) -> HashSet<usize> {
    previous
        .shared
        .iter()
        .flat_map(|s| &s.owners)
        .filter_map(pick)
        .collect()
}

/// A path the inventory made (`dir_rel.join(name)`: relative, no `.` or trailing `/`) as its
/// dir and name, in bytes, without parsing it into components.
fn split(p: &std::path::Path) -> (&[u8], &[u8]) {
    let b = p.as_os_str().as_bytes();
    match b.iter().rposition(|c| *c == b'/') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (&[], b),
    }
}

/// A unit hash as cargo writes it in names: 16 lowercase hex digits.
fn hex16(hash: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    // 16 digits always fit: the write cannot fail.
    let _ = std::io::Write::write_fmt(&mut &mut out[..], format_args!("{hash:016x}"));
    out
}

/// The lent units the walk met (any of their paths: its threads' `accs` say which), taken out
/// of `previous` and numbered by the walk's profiles; their compile times are worked out again
/// with the others'.
pub(super) fn take_lent(previous: &mut TargetDir, lent: &[Option<u16>], accs: &[Acc]) -> Vec<Unit> {
    let mut met = vec![false; lent.len()];
    for id in accs.iter().flat_map(|a| &a.lent_met) {
        if let Some(m) = met.get_mut(*id as usize) {
            *m = true;
        }
    }
    std::mem::take(&mut previous.units)
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut u)| {
            let profile = lent.get(i).copied().flatten()?;
            if !met.get(i).copied().unwrap_or(false) {
                return None;
            }
            u.key.profile = profile;
            u.timing = None;
            Some(u)
        })
        .collect()
}

/// The incremental crate dirs of an earlier walk that a walk may take as they were, by the
/// profile's index in `profile_rels` and then the dir's name: those sharing no inode with
/// another part (the sharing is only seen by walking every link).
pub(super) fn walked_incremental<'t>(
    previous: &'t TargetDir,
    profile_rels: &[PathBuf],
) -> Vec<HashMap<&'t str, &'t IncrementalDir>> {
    let shared = sharing(previous, |o| match o {
        Part::Incremental(i) => Some(*i),
        _ => None,
    });
    let mut out = vec![HashMap::new(); profile_rels.len()];
    for (i, d) in previous.incremental.iter().enumerate() {
        if shared.contains(&i) || d.dir_mtime.is_none() {
            continue;
        }
        let Some(rel) = previous
            .profiles
            .get(usize::from(d.profile))
            .map(|p| &p.rel)
        else {
            continue;
        };
        if let Some(p) = profile_rels.iter().position(|r| r == rel) {
            out[p].insert(d.name.as_str(), d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{scan, scan_cached};
    use super::*;
    use std::path::Path;

    /// A small deterministic generator (xorshift): the same trees and changes every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn bytes(&mut self) -> Vec<u8> {
            vec![7u8; usize::try_from(self.below(20_000)).unwrap()]
        }
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Shape {
        Lib,
        /// A binary, uplifted into the profile dir as a hard link.
        Bin,
        /// A build script's run, with its dir under `build/`.
        Run,
        /// The build-dir layout: `build/<pkg>/<H>/`.
        New,
    }

    /// A unit of the generated target dir: its fingerprint dir (relative) and every path it
    /// owns (relative to the profile).
    struct Made {
        pkg: String,
        hash: String,
        shape: Shape,
        fingerprint_dir: PathBuf,
        paths: Vec<PathBuf>,
        value: u64,
    }

    /// A cargo-shaped target dir with one profile, changed the way builds change it.
    struct Tree {
        dir: tempfile::TempDir,
        rng: Rng,
        units: Vec<Made>,
        next: u64,
    }

    impl Tree {
        fn new(seed: u64) -> Tree {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(
                dir.path().join("CACHEDIR.TAG"),
                format!(
                    "{}\n# This file is a cache directory tag created by cargo.\n",
                    crate::os::safefs::CACHEDIR_SIGNATURE
                ),
            )
            .unwrap();
            for d in [".fingerprint", "deps", "build", "incremental"] {
                std::fs::create_dir_all(dir.path().join("debug").join(d)).unwrap();
            }
            std::fs::write(dir.path().join("debug/.cargo-lock"), "").unwrap();
            Tree {
                dir,
                rng: Rng(seed),
                units: Vec::new(),
                next: 0,
            }
        }

        fn profile(&self) -> PathBuf {
            self.dir.path().join("debug")
        }

        fn write(&mut self, rel: &Path, bytes: &[u8]) {
            let path = self.profile().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }

        /// Writes a unit's fingerprint files into `fp` (relative to the profile), naming one
        /// earlier unit as its dependency.
        fn fingerprint(&mut self, fp: &Path, target: &str, value: u64) {
            let dep = match self.units.len() as u64 {
                0 => 0,
                n => self.units[usize::try_from(self.rng.below(n)).unwrap()].value,
            };
            self.write(&fp.join(target), format!("{value:016x}").as_bytes());
            let json = format!(r#"{{"rustc":1,"deps":[[0,"dep",false,{dep}]]}}"#);
            self.write(&fp.join(format!("{target}.json")), json.as_bytes());
            self.write(&fp.join(format!("dep-{target}")), b"dep-info");
            self.write(&fp.join("invoked.timestamp"), b"");
        }

        /// Builds a new unit of `shape` (a new hash), and returns where it is in `units`.
        fn add(&mut self, pkg: &str, shape: Shape) -> usize {
            self.next += 1;
            let hash = format!("{:016x}", self.rng.next());
            let value = self.rng.next();
            let (fp, target) = match shape {
                Shape::New => (
                    PathBuf::from(format!("build/{pkg}/{hash}/fingerprint")),
                    format!("lib-{pkg}"),
                ),
                Shape::Lib => (
                    PathBuf::from(format!(".fingerprint/{pkg}-{hash}")),
                    format!("lib-{pkg}"),
                ),
                Shape::Bin => (
                    PathBuf::from(format!(".fingerprint/{pkg}-{hash}")),
                    format!("bin-{pkg}"),
                ),
                Shape::Run => (
                    PathBuf::from(format!(".fingerprint/{pkg}-{hash}")),
                    "run-build-script-build-script-build".to_string(),
                ),
            };
            self.fingerprint(&fp, &target, value);
            let mut paths = vec![fp.clone()];
            let outputs: Vec<PathBuf> = match shape {
                Shape::Lib => vec![
                    format!("deps/lib{pkg}-{hash}.rlib").into(),
                    format!("deps/lib{pkg}-{hash}.rmeta").into(),
                    format!("deps/{pkg}-{hash}.d").into(),
                ],
                Shape::Bin => vec![format!("deps/{pkg}-{hash}").into()],
                Shape::Run => vec![
                    format!("build/{pkg}-{hash}/output").into(),
                    format!("build/{pkg}-{hash}/root-output").into(),
                    format!("build/{pkg}-{hash}/out/gen.rs").into(),
                ],
                Shape::New => vec![format!("build/{pkg}/{hash}/out/lib{pkg}.rlib").into()],
            };
            for o in &outputs {
                let bytes = self.rng.bytes();
                self.write(o, &bytes);
            }
            match shape {
                Shape::Lib | Shape::Bin => paths.extend(outputs.iter().cloned()),
                Shape::Run => paths.push(format!("build/{pkg}-{hash}").into()),
                Shape::New => paths = vec![format!("build/{pkg}/{hash}").into()],
            }
            if shape == Shape::Bin {
                // The uplift: the newest build of the binary takes the link over.
                let uplift = self.profile().join(pkg);
                let _ = std::fs::remove_file(&uplift);
                std::fs::hard_link(self.profile().join(&outputs[0]), uplift).unwrap();
            }
            if shape == Shape::Lib && self.rng.below(3) == 0 {
                let crate_dir = format!("incremental/{pkg}-{}", self.next);
                let session = format!("{crate_dir}/s-ha2x3kqo6w-1xyz-{hash}");
                let bytes = self.rng.bytes();
                self.write(&Path::new(&session).join("0.o"), &bytes);
            }
            self.units.push(Made {
                pkg: pkg.to_string(),
                hash,
                shape,
                fingerprint_dir: Path::new("debug").join(fp),
                paths,
                value,
            });
            self.units.len() - 1
        }

        /// A random change a build (or `cargo clean -p`) makes; returns the fingerprint dirs
        /// it wrote, created or removed, as the daemon's watches would name them.
        fn change(&mut self) -> Vec<PathBuf> {
            let n = self.units.len() as u64;
            let i = usize::try_from(self.rng.below(n)).unwrap();
            match self.rng.below(5) {
                // Recompiled in place: new fingerprint, outputs of another size.
                0 | 1 => {
                    let u = &self.units[i];
                    let (fp, outputs) = (u.fingerprint_dir.clone(), u.paths.clone());
                    let target = std::fs::read_dir(self.dir.path().join(&fp))
                        .unwrap()
                        .map(|e| e.unwrap().file_name().into_string().unwrap())
                        .find(|n| n.ends_with(".json"))
                        .unwrap();
                    let fp_rel = fp.strip_prefix("debug").unwrap().to_path_buf();
                    let value = self.rng.next();
                    self.fingerprint(&fp_rel, target.strip_suffix(".json").unwrap(), value);
                    for o in outputs.iter().filter(|o| o.starts_with("deps")) {
                        let bytes = self.rng.bytes();
                        self.write(o, &bytes);
                    }
                    self.units[i].value = value;
                    vec![fp]
                }
                // Removed, as `cargo clean -p` does.
                2 => {
                    let u = self.units.remove(i);
                    for p in &u.paths {
                        let path = self.profile().join(p);
                        if path.is_dir() {
                            std::fs::remove_dir_all(path).unwrap();
                        } else {
                            std::fs::remove_file(path).unwrap();
                        }
                    }
                    vec![u.fingerprint_dir]
                }
                // A new version of the same package (its binary's link taken over).
                3 => {
                    let (pkg, shape) = (self.units[i].pkg.clone(), self.units[i].shape);
                    let j = self.add(&pkg, shape);
                    vec![self.units[j].fingerprint_dir.clone()]
                }
                _ => {
                    let shape = [Shape::Lib, Shape::Bin, Shape::Run, Shape::New]
                        [usize::try_from(self.rng.below(4)).unwrap()];
                    let j = self.add(&format!("p{}", self.next), shape);
                    vec![self.units[j].fingerprint_dir.clone()]
                }
            }
        }
    }

    /// What a walk measured, every field, in a form two walks can be compared by (all but how
    /// many units it took as they were).
    fn shown(t: &TargetDir) -> String {
        let t = TargetDir {
            kept_units: 0,
            ..t.clone()
        };
        format!("{t:#?}")
    }

    /// The property the daemon's index rests on: after any changes a build makes, a walk that
    /// takes the units its watches saw no change in as they were measures exactly what a
    /// walk of everything does, refresh after refresh.
    #[test]
    fn units_taken_as_they_were_measure_what_a_walk_of_everything_does() {
        for seed in 1..=6u64 {
            let mut t = Tree::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in 0..40 {
                let shape = [Shape::Lib, Shape::Lib, Shape::Bin, Shape::Run, Shape::New][i % 5];
                t.add(&format!("p{i}"), shape);
            }
            // One inode shared by two units (never taken as it was: the sharing is only seen
            // by walking every link).
            let (a, b) = (
                t.profile().join(&t.units[0].paths[1]),
                t.units[5].hash.clone(),
            );
            std::fs::hard_link(a, t.profile().join(format!("deps/libp5-{b}.so"))).unwrap();
            let mut index = scan(t.dir.path(), 1).unwrap();
            let mut kept = 0;
            for round in 0..8 {
                let mut changed = HashSet::new();
                for _ in 0..=t.rng.below(4) {
                    changed.extend(t.change());
                }
                // Held packed between refreshes, as the daemon's index holds it.
                let packed = cachekeeper_core::model::Packed::pack(&index);
                let walk = packed.unpack().expect("a walk's target dir unpacks");
                assert_eq!(format!("{walk:?}"), format!("{index:?}"), "seed {seed}");
                let earlier = Earlier {
                    walk,
                    changed_units: Some(changed),
                };
                index = scan_cached(t.dir.path(), 1, None, None, Some(earlier)).unwrap();
                let all = scan(t.dir.path(), 1).unwrap();
                assert_eq!(shown(&index), shown(&all), "seed {seed}, round {round}");
                kept += index.kept_units;
            }
            // Most units were taken as they were (a change touches a few; binaries are walked).
            assert!(
                kept > 8 * 20,
                "seed {seed}: {kept} units kept in 8 refreshes"
            );
        }
    }

    /// Units taken as they were are not looked at: what changed in one without a build (a file
    /// rewritten by hand) is not seen until a walk of everything.
    #[test]
    fn a_unit_taken_as_it_was_is_not_looked_at() {
        let mut t = Tree::new(42);
        for i in 0..4 {
            t.add(&format!("p{i}"), Shape::Lib);
        }
        let index = scan(t.dir.path(), 1).unwrap();
        let rlib = t.units[2].paths[1].clone();
        t.write(&rlib, &[1u8; 100_000]);
        let earlier = |changed: Vec<PathBuf>| Earlier {
            walk: index.clone(),
            changed_units: Some(changed.into_iter().collect()),
        };
        let taken = scan_cached(t.dir.path(), 1, None, None, Some(earlier(Vec::new()))).unwrap();
        assert_eq!(taken.usage.total(), index.usage.total());
        assert_eq!(taken.kept_units, 4);
        // Named as changed, it is walked again.
        let fp = t.units[2].fingerprint_dir.clone();
        let walked = scan_cached(t.dir.path(), 1, None, None, Some(earlier(vec![fp]))).unwrap();
        assert!(walked.usage.total().bytes > index.usage.total().bytes);
        assert_eq!(shown(&walked), shown(&scan(t.dir.path(), 1).unwrap()));
    }
}
