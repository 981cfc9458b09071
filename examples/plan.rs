//! Plans a budget over a synthetic target dir of N units, by cost and by LRU, and prints how
//! long each took: `cargo run --release --example plan -- N flat|chain|tree`. Used by
//! `bench/plan.sh`. The units are shaped as cargo's: sizes, compile times, last uses spread
//! over two months; `chain` makes each unit depend on the one before (the deepest graph),
//! `tree` gives each a few dependencies among the earlier ones (a real crate graph's shape).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use cachekeeper_core::config::{Eviction, Rules, SizeSpec};
use cachekeeper_core::decide::cargo::{Input, Settings, Target, plan};
use cachekeeper_core::model::{
    ByKind, Filesystem, Layout, Profile, ProfileState, Signal, TargetDir, Unit, UnitKey, Usage,
};

fn units(n: usize, shape: &str, now: SystemTime) -> Vec<Unit> {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut v: Vec<Unit> = (0..n)
        .map(|i| {
            let bytes = 10_000 + next() % 5_000_000;
            let used = now - Duration::from_secs(3600 + next() % (60 * 86_400));
            let built = used - Duration::from_secs(next() % 86_400);
            let usage = ByKind {
                deps: Usage {
                    bytes,
                    apparent_bytes: bytes,
                    files: 3,
                },
                ..ByKind::default()
            };
            Unit {
                key: UnitKey {
                    profile: 0,
                    hash: i as u64,
                    layout: Layout::Legacy,
                },
                package: format!("p{i}"),
                targets: vec![format!("lib-p{i}")],
                fingerprints: vec![i as u64],
                rustc: vec![1],
                deps: Vec::new(),
                profile_hash: Some(1),
                compile_kind: Some(0),
                dependents: Vec::new(),
                build_script: false,
                paths: vec![PathBuf::from(format!("debug/.fingerprint/p{i}-{i:016x}"))],
                fingerprint_dir: PathBuf::from(format!("debug/.fingerprint/p{i}-{i:016x}")),
                run_dir: None,
                usage,
                reclaimable: bytes,
                last_used: used,
                last_built: built,
                invoked: Some(built - Duration::from_millis(200 + next() % 20_000)),
                finished: Some(built),
                metadata_at: None,
                proc_macro: false,
                timing: None,
                unreadable: 0,
            }
        })
        .collect();
    for i in 1..n {
        let deps: Vec<usize> = match shape {
            "chain" => vec![i - 1],
            "tree" => (0..3).map(|_| (next() as usize) % i).collect(),
            _ => Vec::new(),
        };
        for d in deps {
            if !v[d].dependents.contains(&i) {
                v[d].dependents.push(i);
            }
        }
    }
    v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let shape = args.get(2).map_or("flat", String::as_str);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let units = units(n, shape, now);
    let total: u64 = units.iter().map(|u| u.reclaimable).sum();
    let mut usage = ByKind::default();
    for u in &units {
        usage.merge(&u.usage);
    }
    let dir = TargetDir {
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
        ..TargetDir::empty(PathBuf::from("/bench/target"))
    };
    let fss = vec![Filesystem {
        dev: 1,
        path: PathBuf::from("/"),
        total_bytes: total * 4,
        free_bytes: total,
        ..Filesystem::default()
    }];
    let modes = match args.get(3).map(String::as_str) {
        Some("lru") => vec![Eviction::Lru],
        Some("cost") => vec![Eviction::Cost],
        Some("none") => Vec::new(),
        _ => vec![Eviction::Lru, Eviction::Cost],
    };
    for eviction in modes {
        let settings = Settings {
            rules: Rules {
                incremental: false,
                toolchains: false,
                stale: false,
                budgets: true,
            },
            min_age: Duration::from_secs(60),
            stale_after: Duration::from_secs(30 * 86_400),
            incremental_max_age: Duration::from_secs(14 * 86_400),
            // Half of it must go.
            target_budget: Some(SizeSpec::Bytes(total / 2)),
            total_budget: None,
            min_free: None,
            eviction,
            superseded_after: None,
        };
        let t = Instant::now();
        let p = plan(&Input {
            targets: vec![Target {
                dir: &dir,
                signal: Signal::Relatime,
                watched_since: None,
                fs: cachekeeper_core::model::FsId(0),
            }],
            filesystems: &fss,
            toolchains: None,
            settings: &settings,
            uses: None,
            now,
        });
        let took = t.elapsed();
        let (rebuild, _) = p.rebuild_seconds();
        let picks = p
            .actions
            .iter()
            .filter(|a| !a.reason.starts_with("depends on"))
            .count();
        println!(
            "{n} {shape} {:?}: {:.3} s, {} removals in {picks} picks, {} MB planned of {} MB, ~{:.0} s to rebuild",
            eviction,
            took.as_secs_f64(),
            p.actions.len(),
            p.planned_bytes() / 1_000_000,
            total / 1_000_000,
            rebuild
        );
    }
}
