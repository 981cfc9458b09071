//! Which units the next builds compile: what the latest builds used.
//!
//! A target dir keeps every generation its builds made: each version bump or feature change
//! leaves the old units beside the new. The next `cargo build` compiles only what the latest
//! build of the same thing used, so removing an older generation costs the next builds
//! nothing. What the latest builds used is the dependency closure of their final units: each
//! unit nothing depends on (a binary, a test, a library at the top) that is the newest of its
//! [`Slot`] (the same package, profile, targets, way of building and platform), with every
//! unit it depends on, however old. Two versions one build used (syn 1 and syn 2) are both in
//! the closure; an older feature set of a binary is not.

use std::collections::HashMap;
use std::time::SystemTime;

use super::{TargetDir, Unit};

/// What makes two units rivals: the same package, profile and targets (kind and name), built
/// the same way (the fingerprint's profile hash covers build, check, test and doc, and the
/// profile's settings) for the same platform. Two versions, or two feature sets, of one crate.
/// Borrowed from the unit: slots are worked out for every unit at every refresh.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slot<'u> {
    package: &'u str,
    profile: u16,
    targets: Vec<&'u str>,
    how: u64,
    platform: u64,
}

impl<'u> Slot<'u> {
    /// Its slot; `None` where its fingerprint did not say how it was built.
    #[must_use]
    pub fn of(u: &'u Unit) -> Option<Slot<'u>> {
        let mut targets: Vec<&str> = u.targets.iter().map(String::as_str).collect();
        targets.sort_unstable();
        targets.dedup();
        Some(Slot {
            package: &u.package,
            profile: u.key.profile,
            targets,
            how: u.profile_hash?,
            platform: u.compile_kind?,
        })
    }
}

/// Per unit of `dir`: whether the latest builds used it (see the module doc). `used` is each
/// unit's last use (its files', or what the daemon recorded); ties go to the later build.
#[must_use]
pub fn latest_builds(dir: &TargetDir, used: &[SystemTime]) -> Vec<bool> {
    let n = dir.units.len();
    let when = |u: usize| (used.get(u).copied(), dir.units[u].last_built);
    let slots: Vec<Option<Slot>> = dir.units.iter().map(Slot::of).collect();
    let mut newest: HashMap<&Slot, usize> = HashMap::new();
    for (u, slot) in slots.iter().enumerate() {
        if let Some(slot) = slot {
            let e = newest.entry(slot).or_insert(u);
            if when(u) > when(*e) {
                *e = u;
            }
        }
    }
    let mut deps = vec![Vec::new(); n];
    for (u, unit) in dir.units.iter().enumerate() {
        for &d in &unit.dependents {
            if let Some(list) = deps.get_mut(d) {
                list.push(u);
            }
        }
    }
    let mut current = vec![false; n];
    let mut stack: Vec<usize> = (0..n)
        .filter(|&u| {
            dir.units[u].dependents.iter().all(|&d| d >= n)
                && slots[u].as_ref().is_none_or(|s| newest.get(s) == Some(&u))
        })
        .collect();
    while let Some(u) = stack.pop() {
        if std::mem::replace(&mut current[u], true) {
            continue;
        }
        stack.extend(deps[u].iter().copied().filter(|&d| !current[d]));
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(days: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + (days * 86_400.0) as u64)
    }

    /// A unit of `pkg`, last used and built on day `used`; one built the same way as every other.
    fn unit(pkg: &str, target: &str, used: f64, dependents: &[usize]) -> Unit {
        Unit {
            package: pkg.into(),
            targets: vec![target.into()],
            profile_hash: Some(1),
            compile_kind: Some(0),
            dependents: dependents.to_vec(),
            last_built: at(used),
            last_used: at(used),
            ..crate::model::target::tests::blank_unit()
        }
    }

    #[test]
    fn the_latest_build_is_the_closure_of_the_newest_final_units() {
        // Generation A (day 0): app on tokio 1 and libc. Generation B (day 7): app on tokio
        // with other features, the same libc, and syn 1 and syn 2 both.
        let units = vec![
            unit("libc", "lib-libc", 0.0, &[1, 3]), // 0: both generations use it
            unit("tokio", "lib-tokio", 0.0, &[2]),  // 1: A's tokio
            unit("app", "bin-app", 0.0, &[]),       // 2: A's app
            unit("tokio", "lib-tokio", 7.0, &[4]),  // 3: B's tokio
            unit("app", "bin-app", 7.0, &[]),       // 4: B's app
            unit("syn", "lib-syn", 7.0, &[6]),      // 5: syn 1, used by B's derive
            unit("derive", "lib-derive", 7.0, &[4]), // 6
            unit("syn", "lib-syn", 6.0, &[4]),      // 7: syn 2, B's app uses it too
            unit("cli", "bin-cli", 0.0, &[]),       // 8: another binary, built once on day 0
        ];
        let mut dir = crate::model::target::tests::blank_dir();
        dir.units = units;
        let used: Vec<SystemTime> = dir.units.iter().map(|u| u.last_used).collect();
        let got = latest_builds(&dir, &used);
        assert_eq!(
            got,
            [true, false, false, true, true, true, true, true, true],
            "A's tokio and app are not the latest builds'; libc, both syns and the other binary are"
        );
    }
}
