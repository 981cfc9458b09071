use super::*;
use crate::model::{ByKind, IncrementalDir, Layout, Profile, ProfileState, Unit, UnitKey, Usage};
use std::path::PathBuf;

pub(super) const DAY: Duration = Duration::from_secs(86_400);
const NOW_SECS: u64 = 2_000_000_000;

pub(super) fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

pub(super) fn ago(d: Duration) -> SystemTime {
    now() - d
}

/// A unit of `bytes` bytes, last used `used` ago, built by rustc `rustc`.
pub(super) fn unit(n: u64, used: Duration, bytes: u64) -> Unit {
    Unit {
        key: UnitKey {
            profile: 0,
            hash: n,
            layout: Layout::Legacy,
        },
        package: format!("p{n}"),
        targets: vec![format!("lib-p{n}")],
        fingerprints: vec![1000 + n],
        rustc: vec![7],
        deps: Vec::new(),
        profile_hash: Some(11),
        compile_kind: Some(0),
        dependents: Vec::new(),
        build_script: false,
        paths: vec![PathBuf::from(format!("debug/.fingerprint/p{n}-{n:016x}"))],
        fingerprint_dir: PathBuf::from(format!("debug/.fingerprint/p{n}-{n:016x}")),
        run_dir: None,
        usage: ByKind {
            deps: Usage {
                bytes,
                apparent_bytes: bytes,
                files: 1,
            },
            ..ByKind::default()
        },
        reclaimable: bytes,
        last_used: ago(used),
        last_built: ago(used + DAY),
        invoked: Some(ago(used + DAY)),
        finished: Some(ago(used + DAY)),
        metadata_at: None,
        proc_macro: false,
        timing: None,
        unreadable: 0,
    }
}

pub(super) fn target(name: &str, units: Vec<Unit>) -> TargetDir {
    let mut usage = ByKind::default();
    for u in &units {
        usage.merge(&u.usage);
    }
    let mut t = TargetDir {
        dev: 1,
        ino: 1,
        profiles: vec![Profile {
            rel: PathBuf::from("debug"),
            layouts: vec![Layout::Legacy],
            usage,
            state: ProfileState::Idle,
        }],
        units,
        usage,
        jobs: 2,
        rustc_vv: Some("rustc 9.9.9\nrelease: 9.9.9\n".into()),
        ..TargetDir::empty(PathBuf::from(name))
    };
    // Dependents from deps, as the inventory links them.
    let fps: Vec<u64> = t.units.iter().map(|u| u.fingerprints[0]).collect();
    let deps: Vec<Vec<u64>> = t.units.iter().map(|u| u.deps.clone()).collect();
    for (i, ds) in deps.iter().enumerate() {
        for d in ds {
            let j = fps.iter().position(|f| f == d).unwrap();
            t.units[j].dependents.push(i);
        }
    }
    t
}

pub(super) fn settings() -> Settings {
    Settings {
        rules: Rules {
            incremental: true,
            toolchains: true,
            stale: true,
            budgets: true,
        },
        min_age: Duration::from_secs(3600),
        stale_after: 30 * DAY,
        incremental_max_age: 14 * DAY,
        target_budget: None,
        total_budget: None,
        min_free: None,
        eviction: Eviction::Lru,
        superseded_after: Some(2 * DAY),
    }
}

pub(super) fn fs(free: u64) -> Vec<Filesystem> {
    vec![Filesystem {
        dev: 1,
        path: PathBuf::from("/"),
        total_bytes: 1_000_000,
        free_bytes: free,
        ..Filesystem::default()
    }]
}

pub(super) fn run(
    targets: &[TargetDir],
    s: &Settings,
    fss: &[Filesystem],
    tc: Option<&Toolchains>,
) -> CargoPlan {
    run_with(targets, s, fss, tc, Signal::Relatime)
}

fn run_with(
    targets: &[TargetDir],
    s: &Settings,
    fss: &[Filesystem],
    tc: Option<&Toolchains>,
    signal: Signal,
) -> CargoPlan {
    run_recorded(targets, s, fss, tc, signal, None)
}

pub(super) fn run_recorded(
    targets: &[TargetDir],
    s: &Settings,
    fss: &[Filesystem],
    tc: Option<&Toolchains>,
    signal: Signal,
    uses: Option<&LastUse>,
) -> CargoPlan {
    run_watched(targets, s, fss, tc, signal, uses, None)
}

/// A plan for target dirs a daemon has watched whole since `watched_since`.
pub(super) fn run_watched(
    targets: &[TargetDir],
    s: &Settings,
    fss: &[Filesystem],
    tc: Option<&Toolchains>,
    signal: Signal,
    uses: Option<&LastUse>,
    watched_since: Option<SystemTime>,
) -> CargoPlan {
    plan(&Input {
        targets: targets
            .iter()
            .map(|dir| Target {
                dir,
                signal,
                watched_since,
                fs: crate::model::FsId(0),
            })
            .collect(),
        filesystems: fss,
        toolchains: tc,
        settings: s,
        uses,
        now: now(),
    })
}

/// (target, unit hash, rule) of every unit action.
pub(super) fn removed(p: &CargoPlan, targets: &[TargetDir]) -> Vec<(usize, u64, Rule)> {
    p.actions
        .iter()
        .filter_map(|a| match a.item.part {
            Part::Unit(u) => Some((
                a.item.target,
                targets[a.item.target].units[u].key.hash,
                a.rule,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn stale_units_go_and_used_ones_stay() {
    let t = vec![target(
        "/t",
        vec![unit(1, 40 * DAY, 100), unit(2, DAY, 100)],
    )];
    let p = run(&t, &settings(), &fs(900_000), None);
    assert_eq!(removed(&p, &t), vec![(0, 1, Rule::Stale)]);
    assert_eq!(p.planned_bytes(), 100);
    assert!(
        p.actions[0]
            .reason
            .contains("not used for 40d (stale-after 30d)"),
        "{}",
        p.actions[0].reason
    );
}

#[test]
fn a_unit_goes_with_its_dependents_and_stays_while_one_is_used() {
    // 2 depends on 1; 3 depends on 2.
    let mut a = unit(1, 40 * DAY, 10);
    let mut b = unit(2, 40 * DAY, 10);
    let mut c = unit(3, 50 * DAY, 10);
    b.deps = vec![1001];
    c.deps = vec![1002];
    let t = vec![target("/t", vec![a.clone(), b.clone(), c.clone()])];
    let p = run(&t, &settings(), &fs(900_000), None);
    let mut r = removed(&p, &t);
    // Dependents are removed before what they depend on.
    assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![3, 2, 1]);
    r.sort();
    assert_eq!(r.len(), 3);

    // A dependent used yesterday keeps its whole dependency chain.
    c.last_used = ago(DAY);
    a.last_used = ago(40 * DAY);
    b.last_used = ago(40 * DAY);
    let t = vec![target("/t", vec![a, b, c])];
    let p = run(&t, &settings(), &fs(900_000), None);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
}

#[test]
fn target_budget_removes_least_recently_used_until_it_holds() {
    let units: Vec<Unit> = (1..=10)
        .map(|i| unit(i, Duration::from_secs(i * 3 * 3600), 100))
        .collect();
    let t = vec![target("/t", units)];
    let mut s = settings();
    s.target_budget = Some(SizeSpec::Bytes(550));
    let p = run(&t, &s, &fs(900_000), None);
    let r = removed(&p, &t);
    // 1000 bytes, budget 550: the five least recently used (10, 9, 8, 7, 6) go.
    assert_eq!(
        r.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![10, 9, 8, 7, 6]
    );
    assert!(r.iter().all(|x| x.2 == Rule::TargetBudget));
    assert!(p.shortfalls.is_empty());
    assert_eq!(p.targets[0].budget, Some(550));
}

#[test]
fn young_units_are_never_removed_and_the_shortfall_is_said() {
    let t = vec![target(
        "/t",
        vec![
            unit(1, Duration::from_secs(600), 100),
            unit(2, 5 * DAY, 100),
        ],
    )];
    let mut s = settings();
    s.target_budget = Some(SizeSpec::Bytes(50));
    let p = run(&t, &s, &fs(900_000), None);
    assert_eq!(removed(&p, &t), vec![(0, 2, Rule::TargetBudget)]);
    assert_eq!(p.shortfalls.len(), 1);
    assert_eq!(p.shortfalls[0].missing_bytes, 50);
    assert!(
        p.shortfalls[0]
            .why
            .contains("1 unit (100 B) used within min-age"),
        "{}",
        p.shortfalls[0].why
    );
    // What the budget wanted and min-age kept is counted.
    assert_eq!(
        p.targets[0].kept.get(&Protection::MinAge),
        Some(&Kept {
            parts: 1,
            bytes: 100,
            until: None,
        })
    );
}

#[test]
fn busy_profiles_are_left_alone() {
    let mut t = target("/t", vec![unit(1, 90 * DAY, 100)]);
    t.profiles[0].state = ProfileState::Busy;
    let mut s = settings();
    s.target_budget = Some(SizeSpec::Bytes(0));
    let t = vec![t];
    let p = run(&t, &s, &fs(900_000), None);
    assert!(p.actions.is_empty());
    assert!(
        p.targets[0]
            .notes
            .iter()
            .any(|n| n.contains("build is running"))
    );
    assert_eq!(p.targets[0].protected_bytes, 100);
    // The stale rule wanted it: what the running build keeps is counted, for the report.
    assert_eq!(
        p.kept().get(&Protection::BuildRunning),
        Some(&Kept {
            parts: 1,
            bytes: 100,
            until: None,
        })
    );
}

#[test]
fn total_budget_is_least_recently_used_across_target_dirs() {
    let t = vec![
        target("/a", vec![unit(1, 2 * DAY, 100), unit(2, 4 * DAY, 100)]),
        target("/b", vec![unit(3, 3 * DAY, 100), unit(4, 5 * DAY, 100)]),
    ];
    let mut s = settings();
    s.total_budget = Some(SizeSpec::Bytes(250));
    let p = run(&t, &s, &fs(900_000), None);
    assert_eq!(
        removed(&p, &t),
        vec![(1, 4, Rule::TotalBudget), (0, 2, Rule::TotalBudget)]
    );
}

#[test]
fn min_free_frees_what_the_watermark_needs() {
    let t = vec![target(
        "/a",
        (1..=5)
            .map(|i| unit(i, DAY * u32::try_from(i).unwrap(), 100))
            .collect(),
    )];
    let mut s = settings();
    s.min_free = Some(SizeSpec::Bytes(1000));
    // 750 free, 1000 wanted: 250 more, so three units of 100.
    let p = run(&t, &s, &fs(750), None);
    assert_eq!(
        removed(&p, &t).iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![5, 4, 3]
    );
    let mut s = settings();
    s.min_free = Some(SizeSpec::Percent(10.0)); // of 1_000_000
    let p = run(&t, &s, &fs(100_000), None);
    assert!(p.actions.is_empty());
    assert_eq!(p.min_free, vec![Some(100_000)]);
}

#[test]
fn toolchain_rule_removes_units_of_uninstalled_compilers_only_when_verified() {
    let vv = "rustc 9.9.9\nrelease: 9.9.9\n";
    let [installed_hash, _] = crate::model::hashes_of(vv);
    let mut old = unit(1, DAY * 2, 100);
    old.rustc = vec![12345];
    let mut current = unit(2, DAY, 100);
    current.rustc = vec![installed_hash];
    let t = vec![target("/t", vec![old.clone(), current.clone()])];
    let mut tc = Toolchains::default();
    tc.add_verbose_version(vv);
    let p = run(&t, &settings(), &fs(900_000), Some(&tc));
    assert_eq!(removed(&p, &t), vec![(0, 1, Rule::Toolchain)]);

    // Hashes in the target dir match nothing we can compute: rule off, nothing removed.
    let mut t2 = target("/t", vec![old.clone(), current.clone()]);
    t2.rustc_vv = Some("rustc 0.0.1\nrelease: 0.0.1\n".into());
    let t2 = vec![t2];
    let p = run(&t2, &settings(), &fs(900_000), Some(&tc));
    assert!(p.actions.is_empty());
    assert!(
        p.targets[0].notes[0].contains("unknown scheme"),
        "{:?}",
        p.targets[0].notes
    );

    // The newest build used a compiler we do not see: rule off.
    let mut tc2 = Toolchains::default();
    tc2.add_verbose_version("rustc 1.0.0\nrelease: 1.0.0\n");
    let p = run(&t, &settings(), &fs(900_000), Some(&tc2));
    assert!(p.actions.is_empty());
    assert!(
        p.targets[0].notes[0].contains("not found installed"),
        "{:?}",
        p.targets[0].notes
    );
}

pub(super) fn incr(name: &str, written: Duration, owners: Vec<usize>) -> IncrementalDir {
    IncrementalDir {
        profile: 0,
        name: name.into(),
        crate_name: name.split('-').next().unwrap().into(),
        path: PathBuf::from(format!("debug/incremental/{name}")),
        usage: Usage {
            bytes: 40,
            apparent_bytes: 40,
            files: 3,
        },
        reclaimable: 40,
        newest_session: Some(ago(written)),
        newest_mtime: ago(written),
        dir_mtime: None,
        session_locks: vec!["s-x.lock".into()],
        owners,
    }
}

#[test]
fn incremental_dirs_superseded_old_or_with_their_unit() {
    let mut t = target("/t", vec![unit(1, DAY, 100), unit(2, 40 * DAY, 100)]);
    t.incremental = vec![
        incr("a-1", 2 * DAY, vec![0]),                // owned, fresh: stays
        incr("a-0", 3 * DAY, vec![]),                 // superseded: goes
        incr("b-1", 20 * DAY, vec![0]),               // owned but older than 14d: goes
        incr("c-1", 10 * DAY, vec![1]),               // goes with stale unit 2
        incr("d-0", Duration::from_secs(60), vec![]), // unowned but young: stays
    ];
    let t = vec![t];
    let p = run(&t, &settings(), &fs(900_000), None);
    let incs: Vec<(&str, Rule)> = p
        .actions
        .iter()
        .filter_map(|a| match a.item.part {
            Part::Incremental(i) => Some((t[0].incremental[i].name.as_str(), a.rule)),
            _ => None,
        })
        .collect();
    assert_eq!(
        incs,
        vec![
            ("a-0", Rule::Incremental),
            ("b-1", Rule::Incremental),
            ("c-1", Rule::Stale)
        ]
    );
}

#[test]
fn noatime_turns_the_stale_rule_off_and_orders_budgets_by_build_time() {
    let mut a = unit(1, 40 * DAY, 100);
    a.last_built = ago(2 * DAY);
    let mut b = unit(2, 50 * DAY, 100);
    b.last_built = ago(DAY);
    let t = vec![target("/t", vec![a, b])];
    let p = run_with(&t, &settings(), &fs(900_000), None, Signal::BuildTimeOnly);
    assert!(p.actions.is_empty());
    assert!(p.targets[0].notes.iter().any(|n| n.contains("noatime")));
    let mut s = settings();
    s.target_budget = Some(SizeSpec::Bytes(150));
    let p = run_with(&t, &s, &fs(900_000), None, Signal::BuildTimeOnly);
    assert_eq!(removed(&p, &t), vec![(0, 1, Rule::TargetBudget)]);
}

#[test]
fn a_shared_inode_counts_when_its_last_owner_goes() {
    let mut t = target(
        "/t",
        vec![
            unit(1, 40 * DAY, 100),
            unit(2, 40 * DAY, 100),
            unit(3, DAY, 100),
        ],
    );
    t.shared = vec![
        crate::model::SharedInode {
            bytes: 50,
            owners: vec![Part::Unit(0), Part::Unit(1)],
        },
        crate::model::SharedInode {
            bytes: 70,
            owners: vec![Part::Unit(0), Part::Unit(2)],
        },
    ];
    let t = vec![t];
    let p = run(&t, &settings(), &fs(900_000), None);
    // Units 1 and 2 are stale; the inode they share comes back with the second one, the
    // one shared with the kept unit 3 never does.
    assert_eq!(
        p.actions.iter().map(|a| a.bytes).collect::<Vec<_>>(),
        vec![100, 150]
    );
}

/// Issue: a fresh daemon counted first sight as a use, so it planned 132 KiB where the CLI
/// planned 4.75 MiB of stale units. Where file times tell, the daemon trusts them up to the
/// moment it began watching, as the CLI does; after it, only builds it saw and writes count.
#[test]
fn a_daemon_trusts_file_times_until_it_watches_and_its_own_record_after() {
    let t = vec![target("/t", vec![unit(1, 60 * DAY, 100)])];
    let fss = fs(900_000);
    let mut uses = LastUse::default();
    uses.observe(
        std::path::Path::new("/t"),
        &t[0].units[0].fingerprint_dir,
        ago(DAY),
    );
    // A fresh daemon (watching for a day, first saw it then): the CLI's plan.
    let cli = run(&t, &settings(), &fss, None);
    assert_eq!(removed(&cli, &t), vec![(0, 1, Rule::Stale)]);
    let daemon = run_watched(
        &t,
        &settings(),
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(DAY)),
    );
    assert_eq!(removed(&daemon, &t), removed(&cli, &t));

    // A backup read it an hour ago (its access time moved), while the daemon watched for 40
    // days: the CLI is fooled, the daemon is not.
    let mut read = t.clone();
    read[0].units[0].last_used = ago(Duration::from_secs(3600));
    assert!(run(&read, &settings(), &fss, None).actions.is_empty());
    let daemon = run_watched(
        &read,
        &settings(),
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(40 * DAY)),
    );
    assert_eq!(removed(&daemon, &read), vec![(0, 1, Rule::Stale)]);
    // A build the daemon saw use it keeps it.
    let mut used = uses.clone();
    let at = ago(2 * DAY);
    used.record_use(
        std::path::Path::new("/t"),
        &read[0].units[0].fingerprint_dir,
        at,
        5,
    );
    let daemon = run_watched(
        &read,
        &settings(),
        &fss,
        None,
        Signal::Relatime,
        Some(&used),
        Some(ago(40 * DAY)),
    );
    assert!(daemon.actions.is_empty());
}

/// On noatime the daemon cannot know a unit's use before it watched: it keeps it for
/// stale-after from first sight, says until when, and budgets may still take it.
#[test]
fn on_noatime_a_daemon_keeps_what_it_cannot_know_from_first_sight_but_not_from_budgets() {
    let a = unit(1, 60 * DAY, 100);
    let mut uses = LastUse::default();
    uses.observe(std::path::Path::new("/t"), &a.fingerprint_dir, ago(DAY));
    let t = vec![target("/t", vec![a])];
    let fss = fs(900_000);
    let watched = |s: &Settings, uses: &LastUse| {
        run_watched(
            &t,
            s,
            &fss,
            None,
            Signal::BuildTimeOnly,
            Some(uses),
            Some(ago(DAY)),
        )
    };
    let p = watched(&settings(), &uses);
    assert!(p.actions.is_empty(), "seen a day ago: not known stale yet");
    let kept = &p.targets[0].kept[&Protection::UnknownBeforeWatch];
    assert_eq!((kept.parts, kept.bytes), (1, 100));
    assert_eq!(
        kept.until.as_deref(),
        Some(crate::units::rfc3339(ago(DAY) + 30 * DAY).as_str())
    );
    // Without a daemon on noatime the stale rule is off altogether.
    let p = run_recorded(&t, &settings(), &fss, None, Signal::BuildTimeOnly, None);
    assert!(p.actions.is_empty());
    let mut s = settings();
    s.target_budget = Some(SizeSpec::Bytes(0));
    assert_eq!(
        removed(&watched(&s, &uses), &t),
        vec![(0, 1, Rule::TargetBudget)]
    );
    // Watched for longer than stale-after: known unused since it watched.
    let mut old = LastUse::default();
    old.observe(
        std::path::Path::new("/t"),
        &t[0].units[0].fingerprint_dir,
        ago(31 * DAY),
    );
    let p = run_watched(
        &t,
        &settings(),
        &fss,
        None,
        Signal::BuildTimeOnly,
        Some(&old),
        Some(ago(31 * DAY)),
    );
    assert_eq!(removed(&p, &t), vec![(0, 1, Rule::Stale)]);
}

/// Two versions (or feature sets) of one crate, `old` and `new`, and what a daemon recorded:
/// `old_build` last used the old one, `new_build` the new one (build ids in milliseconds).
fn rivals(old_used: Duration, new_used: Duration) -> Vec<TargetDir> {
    let mut old = unit(1, old_used, 100);
    let mut new = unit(2, new_used, 100);
    for u in [&mut old, &mut new] {
        u.package = "serde".into();
        u.targets = vec!["lib-serde".into()];
    }
    // `app` (unit 3) was built on the old serde and is used by nothing since.
    let mut app = unit(3, old_used, 50);
    app.deps = vec![old.fingerprints[0]];
    old.dependents = vec![2];
    let t = target("/t", vec![old, new, app]);
    vec![t]
}

fn build_id(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn recorded_builds(t: &TargetDir, builds: &[(usize, SystemTime)]) -> LastUse {
    let mut uses = LastUse::default();
    for u in &t.units {
        uses.observe(&t.path, &u.fingerprint_dir, ago(30 * DAY));
    }
    for &(u, at) in builds {
        uses.record_use(&t.path, &t.units[u].fingerprint_dir, at, build_id(at));
    }
    uses
}

#[test]
fn a_unit_another_version_replaced_in_a_watched_build_goes_after_superseded_after() {
    let t = rivals(5 * DAY, 3 * DAY);
    let uses = recorded_builds(
        &t[0],
        &[(0, ago(5 * DAY)), (2, ago(5 * DAY)), (1, ago(3 * DAY))],
    );
    let fss = fs(900_000);
    let watched = |s: &Settings, uses: &LastUse, t: &[TargetDir]| {
        run_watched(
            t,
            s,
            &fss,
            None,
            Signal::Relatime,
            Some(uses),
            Some(ago(30 * DAY)),
        )
    };
    // The old serde and the app built on it go: 3 days since the build that used the new one.
    let p = watched(&settings(), &uses, &t);
    let mut gone = removed(&p, &t);
    gone.sort();
    assert_eq!(
        gone,
        vec![(0, 1, Rule::Superseded), (0, 3, Rule::Superseded)]
    );
    let reason = &p
        .actions
        .iter()
        .find(|a| a.item.part == Part::Unit(0))
        .unwrap()
        .reason;
    assert!(
        reason.contains("superseded by serde-0000000000000002"),
        "{reason}"
    );
    // Not yet, with a week's wait.
    let mut s = settings();
    s.superseded_after = Some(7 * DAY);
    assert!(watched(&s, &uses, &t).actions.is_empty());
    // Off.
    s.superseded_after = None;
    assert!(watched(&s, &uses, &t).actions.is_empty());
    // Without the daemon's record: off, and said.
    let p = run(&t, &settings(), &fss, None);
    assert!(p.actions.is_empty());
    assert!(
        p.targets[0]
            .notes
            .iter()
            .any(|n| n.contains("superseded rule off")),
        "{:?}",
        p.targets[0].notes
    );
}

#[test]
fn two_versions_one_build_uses_are_never_superseded_nor_one_used_since() {
    let t = rivals(3 * DAY, 3 * DAY);
    let fss = fs(900_000);
    let at = ago(3 * DAY);
    // One build used both (syn 1 and syn 2).
    let mut uses = LastUse::default();
    for u in &t[0].units[..2] {
        uses.record_use(&t[0].path, &u.fingerprint_dir, at, 77);
    }
    let p = run_watched(
        &t,
        &settings(),
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(30 * DAY)),
    );
    assert!(p.actions.is_empty(), "{:?}", removed(&p, &t));
    // The old one used again after the build that used the new one.
    let uses = recorded_builds(&t[0], &[(1, ago(4 * DAY)), (0, ago(3 * DAY))]);
    let p = run_watched(
        &t,
        &settings(),
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(30 * DAY)),
    );
    assert!(
        !removed(&p, &t).iter().any(|r| r.1 == 1),
        "{:?}",
        removed(&p, &t)
    );
}

#[test]
fn superseded_after_zero_takes_them_at_once_even_within_min_age_but_never_under_a_build() {
    let young = Duration::from_secs(600);
    let t = rivals(young * 2, young);
    let uses = recorded_builds(&t[0], &[(0, ago(young * 2)), (1, ago(young))]);
    let fss = fs(900_000);
    let mut s = settings();
    s.superseded_after = Some(Duration::ZERO);
    let p = run_watched(
        &t,
        &s,
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(30 * DAY)),
    );
    let mut gone = removed(&p, &t);
    gone.sort();
    assert_eq!(
        gone,
        vec![(0, 1, Rule::Superseded), (0, 3, Rule::Superseded)]
    );
    // With a wait, min-age keeps it as it keeps everything young.
    s.superseded_after = Some(Duration::from_secs(60));
    let p = run_watched(
        &t,
        &s,
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(30 * DAY)),
    );
    assert!(p.actions.is_empty());
    // A build running in the profile keeps it whatever the setting.
    let mut busy = t.clone();
    busy[0].profiles[0].state = ProfileState::Busy;
    s.superseded_after = Some(Duration::ZERO);
    let p = run_watched(
        &busy,
        &s,
        &fss,
        None,
        Signal::Relatime,
        Some(&uses),
        Some(ago(30 * DAY)),
    );
    assert!(p.actions.is_empty());
}
