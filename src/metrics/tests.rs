use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::report::{BuildkitCleanView, BuildkitView, CleanView, TargetView};
use cachekeeper_core::model::{
    ByKind, CargoPlan, Mode, Rule, RunRecord, ScanErrors, Sides, Signal, Snapshot, SweepReport,
};

fn target(path: &str, bytes: u64) -> TargetView {
    TargetView {
        path: PathBuf::from(path),
        mountpoint: PathBuf::new(),
        walked_at: None,
        bytes,
        apparent_bytes: bytes,
        files: 1,
        units: 1,
        incremental_dirs: 0,
        orphans: 0,
        layouts: Vec::new(),
        last_use_signal: Signal::Relatime,
        by_kind: ByKind::default(),
        profiles: Vec::new(),
        budget_bytes: Some(1000),
        over_budget_bytes: 0,
        reclaimable_bytes: bytes / 10,
        reclaimable_by_rule: BTreeMap::new(),
        rebuild_seconds: 0.0,
        rebuild: cachekeeper_core::model::Rebuild::default(),
        costliest: Vec::new(),
        protected_bytes: 0,
        kept: BTreeMap::new(),
        notes: Vec::new(),
        errors: ScanErrors::default(),
    }
}

fn exposition(targets: Vec<TargetView>, cap: usize) -> Exposition {
    let mut view = SurveyView::build(
        &Snapshot::empty(),
        &CargoPlan::default(),
        BuildkitView::default(),
        "test".into(),
    );
    view.total.bytes = targets.iter().map(|t| t.bytes).sum();
    view.targets = targets;
    Exposition {
        status: Some(view),
        counters: Counters::default(),
        max_target_dirs: cap,
        paths: true,
    }
}

/// The value of the one sample named `name` with `labels` (as written, in order).
fn sample(text: &str, name_and_labels: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map(str::to_string)
}

#[test]
fn the_largest_target_dirs_get_their_own_series_and_the_rest_are_summed() {
    let e = exposition(
        vec![
            target("/a", 300),
            target("/b", 100),
            target("/c", 200),
            target("/d", 50),
        ],
        2,
    );
    let text = e.render(Format::Prometheus, None);
    let used = |p: &str| {
        sample(
            &text,
            &format!("cachekeeper_target_dir_used_bytes{{path=\"{p}\"}}"),
        )
    };
    assert_eq!(used("/a").as_deref(), Some("300"), "{text}");
    assert_eq!(used("/c").as_deref(), Some("200"));
    assert_eq!(used("/b"), None, "past the cap");
    assert_eq!(used("(other)").as_deref(), Some("150"));
    assert_eq!(
        sample(&text, "cachekeeper_cargo_used_bytes").as_deref(),
        Some("650")
    );
    assert_eq!(
        sample(&text, "cachekeeper_target_dirs").as_deref(),
        Some("4")
    );
    // A budget is per dir: no sum of budgets.
    assert_eq!(
        sample(
            &text,
            "cachekeeper_target_dir_budget_bytes{path=\"(other)\"}"
        ),
        None
    );
}

#[test]
fn a_finished_run_is_counted_by_cache_rule_and_trigger() {
    let mut e = exposition(Vec::new(), 50);
    let view = CleanView::build(
        &Snapshot::empty(),
        &CargoPlan::default(),
        &SweepReport::default(),
        BuildkitCleanView::default(),
        Mode::Execute,
        Sides::BOTH,
    );
    let run = |by_rule: &[(Rule, u64)], dry_run: bool| RunRecord {
        trigger: "manual".into(),
        dry_run,
        started_unix: 1_800_000_000,
        duration_ms: 2500,
        by_rule: by_rule.iter().copied().collect(),
        ..RunRecord::default()
    };
    e.counters.observe(
        &run(&[(Rule::Orphaned, 4096), (Rule::KeepDuration, 10)], false),
        &view,
    );
    e.counters
        .observe(&run(&[(Rule::Orphaned, 1 << 20)], true), &view);
    let text = e.render(Format::Prometheus, None);
    assert_eq!(
        sample(
            &text,
            "cachekeeper_reclaimed_bytes_total{cache=\"cargo\",rule=\"orphaned\",trigger=\"manual\"}"
        )
        .as_deref(),
        Some("4096"),
        "a dry run frees nothing: {text}"
    );
    assert_eq!(
        sample(
            &text,
            "cachekeeper_reclaimed_bytes_total{cache=\"buildkit\",rule=\"keep-duration\",trigger=\"manual\"}"
        )
        .as_deref(),
        Some("10")
    );
    for (outcome, n) in [("success", "1"), ("dry-run", "1")] {
        let name = format!("cachekeeper_runs_total{{trigger=\"manual\",outcome=\"{outcome}\"}}");
        assert_eq!(sample(&text, &name).as_deref(), Some(n), "{text}");
    }
    assert_eq!(
        sample(&text, "cachekeeper_run_duration_seconds_count").as_deref(),
        Some("2")
    );
    assert_eq!(
        sample(&text, "cachekeeper_run_duration_seconds_bucket{le=\"5\"}").as_deref(),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(&text, "cachekeeper_last_success_timestamp_seconds").as_deref(),
        Some("1800000000")
    );
}

#[test]
fn openmetrics_when_asked_and_prometheus_text_otherwise() {
    let e = exposition(vec![target("/a", 1)], 50);
    let process = ProcessFacts {
        resident_bytes: 10 << 20,
        cpu_seconds: 1.5,
        open_fds: Some(12),
        start_time_seconds: 1_800_000_000,
    };
    let prom = e.render(Format::Prometheus, Some(process));
    assert!(!prom.contains("# EOF"), "{prom}");
    assert!(
        prom.contains("# TYPE cachekeeper_runs_total counter"),
        "{prom}"
    );
    assert_eq!(
        sample(&prom, "process_cpu_seconds_total").as_deref(),
        Some("1.5")
    );
    assert_eq!(sample(&prom, "process_open_fds").as_deref(), Some("12"));
    let om = e.render(Format::OpenMetrics, Some(process));
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE cachekeeper_runs counter"), "{om}");
    assert!(
        om.contains("# UNIT cachekeeper_cargo_used_bytes bytes"),
        "{om}"
    );
    assert_eq!(
        Format::negotiate(Some("application/openmetrics-text;version=1.0.0")),
        Format::OpenMetrics
    );
    assert_eq!(Format::negotiate(Some("text/plain")), Format::Prometheus);
    assert_eq!(Format::negotiate(None), Format::Prometheus);
    // A histogram lists every bucket before the first run, too.
    assert_eq!(
        sample(
            &prom,
            "cachekeeper_run_duration_seconds_bucket{le=\"3600\"}"
        )
        .as_deref(),
        Some("0"),
        "{prom}"
    );
    // The textfile leaves the process out: node_exporter has its own process_* families.
    assert!(!e.render(Format::Prometheus, None).contains("process_"));
}

#[test]
fn the_next_runs_rebuild_seconds_split_budgets_from_the_other_rules() {
    let mut e = exposition(vec![target("/a", 1)], 50);
    if let Some(v) = e.status.as_mut() {
        v.total.rebuild_seconds = 41.5;
        v.total.budget_rebuild_seconds = 30.0;
    }
    let text = e.render(Format::Prometheus, None);
    let of = |b: &str| {
        sample(
            &text,
            &format!("cachekeeper_cargo_rebuild_seconds{{budget=\"{b}\"}}"),
        )
    };
    assert_eq!(of("true").as_deref(), Some("30.0"), "{text}");
    assert_eq!(of("false").as_deref(), Some("11.5"), "{text}");
}

/// Hardening issue: metrics named every target dir's path (users' projects) to whoever could
/// scrape. `[metrics] paths = false` labels them with a stable short hash instead.
#[test]
fn paths_can_be_labelled_by_a_stable_hash() {
    let t = |p: &str, b: u64| {
        let mut v = target(p, b);
        v.path = std::path::PathBuf::from(p);
        v
    };
    let mut e = exposition(vec![t("/home/alice/secret-project/target", 100)], 50);
    let shown = e.render(Format::Prometheus, None);
    assert!(shown.contains("secret-project"), "{shown}");
    e.paths = false;
    let hidden = e.render(Format::Prometheus, None);
    assert!(
        !hidden.contains("secret-project") && !hidden.contains("alice"),
        "{hidden}"
    );
    let label = hidden
        .lines()
        .find(|l| l.starts_with("cachekeeper_target_dir_used_bytes{"))
        .unwrap()
        .to_string();
    assert!(label.contains("path=\"h-"), "{label}");
    // Stable: the same path, the same label, every time.
    assert_eq!(e.render(Format::Prometheus, None), hidden);
}
