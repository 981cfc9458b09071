//! The rules that remove by what a part is: superseded or old incremental data and orphaned
//! outputs, units of uninstalled toolchains, stale units.

use super::*;
use crate::model::Slot;

impl State<'_> {
    pub(super) fn incremental_rule(&mut self) {
        let s = self.input.settings;
        for t in 0..self.input.targets.len() {
            let dir = self.input.targets[t].dir;
            for (i, inc) in dir.incremental.iter().enumerate() {
                let written = age(self.since(inc.last_written()));
                let reason = if inc.owners.is_empty() {
                    format!(
                        "superseded: no unit of crate `{}` compiled it (last written {written} ago)",
                        inc.crate_name
                    )
                } else if self.since(inc.last_written()) > s.incremental_max_age {
                    format!(
                        "not recompiled for {written} (incremental-max-age {})",
                        age(s.incremental_max_age)
                    )
                } else {
                    continue;
                };
                let item = Part::Incremental(i);
                if let Err(why) = self.profile_free(t, inc.profile) {
                    self.keep(t, item, why);
                } else if self.since(inc.last_written()) < s.min_age {
                    self.keep(t, item, Protection::MinAge);
                } else {
                    self.take(t, item, Rule::Incremental, reason);
                }
            }
            for (i, o) in dir.orphans.iter().enumerate() {
                let item = Part::Orphan(i);
                if let Err(why) = self.profile_free(t, o.key.profile) {
                    self.keep(t, item, why);
                    continue;
                }
                if self.since(o.newest_mtime) < s.min_age {
                    self.keep(t, item, Protection::MinAge);
                    continue;
                }
                let reason = format!(
                    "outputs of unit {:016x} that no fingerprint refers to",
                    o.key.hash
                );
                self.take(t, Part::Orphan(i), Rule::Orphaned, reason);
            }
        }
    }

    /// Whether our rustc hashing matches what cargo stored in this target dir, and the toolchain
    /// of its newest build is installed. Otherwise the toolchain rule could delete live units
    /// (a new hash scheme, or toolchains we cannot see: another user's rustup), so it stays off.
    fn toolchain_rule_applies(&self, t: usize, installed: &Toolchains) -> Result<(), String> {
        let dir = self.input.targets[t].dir;
        let Some(vv) = &dir.rustc_vv else {
            return Err("no .rustc_info.json to check rustc hashes against".into());
        };
        let cached = crate::model::hashes_of(vv);
        if !dir
            .units
            .iter()
            .any(|u| u.rustc.iter().any(|r| cached.contains(r)))
        {
            return Err("rustc hashes in its fingerprints are of an unknown scheme".into());
        }
        let newest = dir.units.iter().max_by_key(|u| u.last_built);
        if let Some(u) = newest
            && !u.rustc.iter().any(|r| installed.is_installed(*r))
        {
            return Err(format!(
                "its newest build ({}) used a rustc that was not found installed",
                u.name()
            ));
        }
        Ok(())
    }

    pub(super) fn toolchain_rule(&mut self) {
        let Some(installed) = self.input.toolchains else {
            return;
        };
        if installed.found.is_empty() {
            for tp in &mut self.plan.targets {
                tp.notes
                    .push("toolchain rule off: no installed rustc found".into());
            }
            return;
        }
        for t in 0..self.input.targets.len() {
            if let Err(why) = self.toolchain_rule_applies(t, installed) {
                self.plan.targets[t]
                    .notes
                    .push(format!("toolchain rule off: {why}"));
                continue;
            }
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                let unit = &dir.units[u];
                if self.dirs[t].removed.contains(&Part::Unit(u))
                    || unit.rustc.is_empty()
                    || unit.rustc.iter().any(|r| installed.is_installed(*r))
                {
                    continue;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    self.keep_group(t, &group);
                    continue;
                }
                self.remove_group(
                    t,
                    u,
                    Rule::Toolchain,
                    "built by a rustc that is no longer installed",
                );
            }
        }
    }

    pub(super) fn stale_rule(&mut self) {
        let s = self.input.settings;
        for t in 0..self.input.targets.len() {
            if !self.input.targets[t].knows_use() {
                self.plan.targets[t].notes.push(
                    "stale rule off: its filesystem records no access times (noatime)".into(),
                );
                continue;
            }
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                let idle = self.since(self.dirs[t].units[u].eff);
                if self.dirs[t].removed.contains(&Part::Unit(u)) || idle <= s.stale_after {
                    continue;
                }
                let group = self.group(t, u);
                if let Some(until) = self.unknown_until(t, &group) {
                    for &g in &group {
                        self.keep_until(t, Part::Unit(g), Protection::UnknownBeforeWatch, until);
                    }
                    continue;
                }
                if self.group_blocked(t, &group) {
                    self.keep_group(t, &group);
                    continue;
                }
                let reason = reason::unused_for(idle, "stale-after", s.stale_after);
                self.remove_group(t, u, Rule::Stale, &reason);
            }
        }
    }

    /// When the last of `group`'s units whose use before the daemon watched is unknown has
    /// been watched for `stale-after` (the stale rule may take them then); `None` when none is
    /// kept that way now.
    fn unknown_until(&self, t: usize, group: &[usize]) -> Option<SystemTime> {
        let after = self.input.settings.stale_after;
        group
            .iter()
            .filter_map(|&g| self.dirs[t].units[g].unknown_since)
            .map(|seen| seen + after)
            .filter(|until| *until > self.input.now)
            .max()
    }

    /// Units another unit of the same package, profile and kind replaced in the last build the
    /// daemon saw use either (a version bump, a feature change): they go `superseded-after`
    /// that build, with their dependents. Two units one build used both (syn 1 and syn 2) are
    /// never superseded, nor one used since. `superseded-after = "0s"` takes them at once,
    /// within min-age too; a build's lock still protects them.
    pub(super) fn superseded_rule(&mut self) {
        let Some(after) = self.input.settings.superseded_after else {
            return;
        };
        for t in 0..self.input.targets.len() {
            let target = &self.input.targets[t];
            let dir = target.dir;
            let slots: Vec<Option<Slot>> = dir.units.iter().map(Slot::of).collect();
            let (Some(uses), Some(_)) = (self.input.uses, target.watched_since) else {
                if has_rivals(&slots) {
                    self.plan.targets[t].notes.push(
                        "superseded rule off: only the daemon sees which build replaced a unit (start `cachekeeper daemon`)"
                            .into(),
                    );
                }
                continue;
            };
            let builds: Vec<Option<u64>> = dir
                .units
                .iter()
                .map(|u| uses.build(&dir.path, &u.fingerprint_dir))
                .collect();
            // Per slot: the newest build that used one of its units, and that unit.
            let mut newest: HashMap<&Slot, (u64, usize)> = HashMap::new();
            for (u, slot) in slots.iter().enumerate() {
                if let (Some(slot), Some(b)) = (slot, builds[u]) {
                    let e = newest.entry(slot).or_insert((b, u));
                    if b > e.0 {
                        *e = (b, u);
                    }
                }
            }
            for u in 0..dir.units.len() {
                let Some(&(build, by)) = slots[u].as_ref().and_then(|s| newest.get(s)) else {
                    continue;
                };
                let at = SystemTime::UNIX_EPOCH + Duration::from_millis(build);
                if builds[u] == Some(build)
                    || self.dirs[t].removed.contains(&Part::Unit(u))
                    || self.dirs[t].units[u].eff >= at
                    || self.since(at) < after
                {
                    continue;
                }
                let group = self.group(t, u);
                let blocked = group
                    .iter()
                    .any(|&g| match self.dirs[t].units[g].protected {
                        Some(Protection::MinAge) => !after.is_zero(),
                        Some(_) => true,
                        None => false,
                    });
                if blocked {
                    self.keep_group(t, &group);
                    continue;
                }
                let reason = format!(
                    "superseded by {}, which the build {} ago used instead (superseded-after {})",
                    dir.units[by].name(),
                    age(self.since(at)),
                    age(after)
                );
                self.remove_group(t, u, Rule::Superseded, &reason);
            }
        }
    }
}

/// Whether any two units are rivals.
fn has_rivals(slots: &[Option<Slot>]) -> bool {
    let mut seen = HashSet::new();
    slots.iter().flatten().any(|s| !seen.insert(s))
}
