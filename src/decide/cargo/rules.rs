//! The rules that remove by what a part is: superseded or old incremental data and orphaned
//! outputs, units of uninstalled toolchains, stale units.

use super::*;

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
                if self.removed[t].contains(&Part::Unit(u))
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
            if !self.input.targets[t].signal.knows_use() {
                self.plan.targets[t].notes.push(
                    "stale rule off: its filesystem records no access times (noatime)".into(),
                );
                continue;
            }
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                // A unit the daemon first saw recently may have been used before it watched.
                let seen = self.first_seen[t][u].unwrap_or(SystemTime::UNIX_EPOCH);
                let idle = self.since(self.eff[t][u].max(seen));
                if self.removed[t].contains(&Part::Unit(u)) || idle <= s.stale_after {
                    continue;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    self.keep_group(t, &group);
                    continue;
                }
                let reason = reason::unused_for(idle, "stale-after", s.stale_after);
                self.remove_group(t, u, Rule::Stale, &reason);
            }
        }
    }
}
