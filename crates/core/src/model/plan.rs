//! What a decision says: which parts go, by which rule, for what reason, and what protections
//! keep. One vocabulary for both caches: an [`Action`] names an item of a target dir or a
//! BuildKit record, a [`Rule`], a reason and the bytes it should give back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Part, Signal};

/// Every rule that can remove something, on either side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// Superseded or old incremental data.
    Incremental,
    /// Outputs no fingerprint refers to.
    Orphaned,
    /// Units of uninstalled toolchains.
    Toolchain,
    /// Units another version or feature set replaced in the last build watched.
    Superseded,
    /// Units unused for `stale-after`.
    Stale,
    TargetBudget,
    TotalBudget,
    MinFree,
    /// BuildKit records unused for `keep-duration`.
    KeepDuration,
    /// The BuildKit cache's `budget`.
    BuildkitBudget,
    /// Cache mounts while the cache is over `hard-limit`.
    HardLimit,
}

impl Rule {
    /// Every rule, in order.
    pub const ALL: [Rule; 11] = [
        Rule::Incremental,
        Rule::Orphaned,
        Rule::Toolchain,
        Rule::Superseded,
        Rule::Stale,
        Rule::TargetBudget,
        Rule::TotalBudget,
        Rule::MinFree,
        Rule::KeepDuration,
        Rule::BuildkitBudget,
        Rule::HardLimit,
    ];

    /// As the config and reports spell it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Incremental => "incremental",
            Rule::Orphaned => "orphaned",
            Rule::Toolchain => "toolchain",
            Rule::Superseded => "superseded",
            Rule::Stale => "stale",
            Rule::TargetBudget => "target-budget",
            Rule::TotalBudget => "total-budget",
            Rule::MinFree => "min-free",
            Rule::KeepDuration => "keep-duration",
            Rule::BuildkitBudget => "buildkit-budget",
            Rule::HardLimit => "hard-limit",
        }
    }

    /// A target dir's budget or a filesystem's `min-free`: rules that take live data.
    #[must_use]
    pub fn is_budget(self) -> bool {
        matches!(self, Rule::TargetBudget | Rule::TotalBudget | Rule::MinFree)
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One planned removal of `item`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Action<I> {
    pub item: I,
    pub rule: Rule,
    /// For people: why it goes.
    pub reason: String,
    /// Bytes it should give back.
    pub bytes: u64,
    /// What it costs to get back, in compile seconds (cargo side; `None` for BuildKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_seconds: Option<f64>,
    /// Its own last use as the plan saw it: one found newer when it is removed means a build
    /// used it since, and it stays.
    #[serde(skip)]
    pub last_use: Option<std::time::SystemTime>,
}

/// A part of one target dir of a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TargetPart {
    /// Index into the snapshot's target dirs.
    pub target: usize,
    pub part: Part,
}

/// A removal in a target dir.
pub type CargoAction = Action<TargetPart>;
/// A removal of a BuildKit record (by its index in the snapshot's records).
pub(crate) type RecordAction = Action<usize>;

/// Why something a rule would remove stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// A build holds cargo's lock on its profile.
    BuildRunning,
    /// Its profile has no cargo lock file: cachekeeper cannot keep builds out while it works.
    NoCargoLock,
    /// Used or written within `min-age`.
    MinAge,
    /// It goes only together with others (a unit's dependents, a record's descendants), one
    /// of which is kept.
    TiedToKept,
    /// A BuildKit record a build is using now.
    InUse,
    /// A BuildKit record held by an image: pruning it frees nothing.
    SharedWithImage,
    /// A BuildKit cache mount, protected by `protect-cache-mounts`.
    CacheMount,
    /// Its last use before the daemon watched cannot be known (a `noatime` mount, or times in
    /// the future): kept for `stale-after` from when the daemon first saw it.
    UnknownBeforeWatch,
}

impl Protection {
    /// For people: why it stays.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Protection::BuildRunning => "a build holds cargo's lock on its profile",
            Protection::NoCargoLock => "its profile has no cargo lock file",
            Protection::MinAge => "used within min-age",
            Protection::TiedToKept => "it goes only with something that is kept",
            Protection::InUse => "in use by a running build",
            Protection::SharedWithImage => "shared with an image",
            Protection::CacheMount => "a protected cache mount",
            Protection::UnknownBeforeWatch => {
                "last use unknown before the daemon started (noatime)"
            }
        }
    }
}

/// What a protection keeps of what the rules would remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub parts: usize,
    pub bytes: u64,
    /// For a protection that lasts a while: when the first of them may go (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

impl Kept {
    pub fn add(&mut self, bytes: u64) {
        self.parts += 1;
        self.bytes = self.bytes.saturating_add(bytes);
    }

    /// Notes that one of them may go at `until` (the earliest is kept).
    pub(crate) fn until_first(&mut self, until: std::time::SystemTime) {
        let text = crate::units::rfc3339(until);
        if self.until.as_ref().is_none_or(|u| text < *u) {
            self.until = Some(text);
        }
    }

    /// Adds what another target dir's protection keeps.
    pub fn merge(&mut self, o: &Kept) {
        self.parts += o.parts;
        self.bytes = self.bytes.saturating_add(o.bytes);
        if let Some(u) = &o.until
            && self.until.as_ref().is_none_or(|mine| u < mine)
        {
            self.until = Some(u.clone());
        }
    }
}

/// A limit the plan cannot meet from what it may remove.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Shortfall {
    pub scope: String,
    pub limit_bytes: u64,
    /// How far from the limit it stays after the plan.
    pub missing_bytes: u64,
    pub why: String,
}

/// The plan's view of one target dir.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TargetPlan {
    /// How last use was known there (the daemon's record where it watches the dir whole).
    pub signal: Signal,
    /// Where the daemon watches the dir whole: since when. Access times after that were no
    /// evidence to the plan, and are none to the sweep's re-check either.
    #[serde(skip)]
    pub watched_since: Option<std::time::SystemTime>,
    /// The resolved per-target budget.
    pub budget: Option<u64>,
    /// Expected reclaim per rule.
    pub by_rule: BTreeMap<Rule, u64>,
    pub planned_bytes: u64,
    /// Compile seconds it costs to get back what is planned here.
    #[serde(default)]
    pub rebuild_seconds: f64,
    /// The next build's rebuild of what is planned here, as cargo would schedule it.
    #[serde(default)]
    pub rebuild: super::Rebuild,
    /// Bytes in units that no rule may touch now (young, or a build runs).
    pub protected_bytes: u64,
    /// What the rules would remove but a protection keeps, by protection (a budget's wish
    /// counts only when the budget then falls short).
    pub kept: BTreeMap<Protection, Kept>,
    /// Why a rule did not apply here.
    pub notes: Vec<String>,
}

/// What goes from the target dirs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CargoPlan {
    pub actions: Vec<CargoAction>,
    pub targets: Vec<TargetPlan>,
    pub total_budget: Option<u64>,
    /// Per filesystem: the resolved watermark.
    pub min_free: Vec<Option<u64>>,
    pub shortfalls: Vec<Shortfall>,
}

impl CargoPlan {
    /// Compile seconds it costs to get back what the plan removes: all of it, and what the
    /// budgets take.
    #[must_use]
    pub fn rebuild_seconds(&self) -> (f64, f64) {
        let mut all = 0.0;
        let mut budgets = 0.0;
        for a in &self.actions {
            let s = a.rebuild_seconds.unwrap_or(0.0);
            all += s;
            if a.rule.is_budget() {
                budgets += s;
            }
        }
        (all, budgets)
    }

    #[must_use]
    pub fn planned_bytes(&self) -> u64 {
        self.actions
            .iter()
            .fold(0, |t, a| t.saturating_add(a.bytes))
    }

    /// The next builds' rebuild of everything planned, the target dirs one after another.
    #[must_use]
    pub fn rebuild(&self) -> super::Rebuild {
        let mut all = super::Rebuild::default();
        for t in &self.targets {
            all.add(&t.rebuild);
        }
        all
    }

    /// What protections keep, over all target dirs.
    #[must_use]
    pub fn kept(&self) -> BTreeMap<Protection, Kept> {
        let mut all: BTreeMap<Protection, Kept> = BTreeMap::new();
        for t in &self.targets {
            for (p, k) in &t.kept {
                all.entry(*p).or_default().merge(k);
            }
        }
        all
    }
}

/// What goes from the BuildKit cache.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildkitPlan {
    pub actions: Vec<RecordAction>,
    pub budget_bytes: Option<u64>,
    pub hard_limit_bytes: Option<u64>,
    pub shortfall: Option<Shortfall>,
    /// Records a rule would remove that a protection keeps (a budget's wish counts only when
    /// it then falls short), by protection.
    pub kept: BTreeMap<Protection, Kept>,
}

impl BuildkitPlan {
    #[must_use]
    pub fn planned_bytes(&self) -> u64 {
        self.actions
            .iter()
            .fold(0, |t, a| t.saturating_add(a.bytes))
    }
}

/// The BuildKit record type of cache mounts (`RUN --mount=type=cache`).
pub(crate) const CACHE_MOUNT: &str = "exec.cachemount";

/// The first 12 characters of a record id, as `docker buildx du` shows them.
#[must_use]
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// A phase of a guard pass, cheapest to rebuild first (`decide::guard` plans them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Cheap,
    Buildkit,
    Units,
    CacheMounts,
}

impl Phase {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Phase::Cheap => "cheap",
            Phase::Buildkit => "buildkit",
            Phase::Units => "units",
            Phase::CacheMounts => "cache-mounts",
        }
    }
}
