//! Every family cachekeeper exports, computed from an [`Exposition`] into plain series, then
//! encoded through a `prometheus-client` collector.

use std::collections::BTreeMap;
use std::path::Path;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::counters::DURATION_BUCKETS;
use super::{Exposition, Format, Histogram, ProcessFacts};
use crate::report::{BuildkitState, SurveyView};

/// The `path` label of target dirs past `max-target-dirs`, summed.
pub const OTHER: &str = "(other)";

type Labels = Vec<(&'static str, String)>;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Int(u64),
    Float(f64),
}

#[derive(Clone, Debug)]
enum Data {
    Counter(Vec<(Labels, Value)>),
    Gauge(Vec<(Labels, Value)>),
    Histogram(Histogram),
}

/// One family: its name without the unit (the encoder appends it), help, unit and series.
#[derive(Clone, Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
    data: Data,
}

#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
    ) -> &mut Vec<(Labels, Value)> {
        self.push(name, help, unit, Data::Gauge(Vec::new()))
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
    ) -> &mut Vec<(Labels, Value)> {
        self.push(name, help, unit, Data::Counter(Vec::new()))
    }

    fn push(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Option<Unit>,
        data: Data,
    ) -> &mut Vec<(Labels, Value)> {
        self.0.push(Family {
            name,
            help,
            unit,
            data,
        });
        match &mut self.0.last_mut().expect("just pushed").data {
            Data::Counter(s) | Data::Gauge(s) => s,
            Data::Histogram(_) => unreachable!("only counters and gauges take series"),
        }
    }

    /// A single unlabelled gauge, if there is a value.
    fn one(&mut self, name: &'static str, help: &'static str, unit: Option<Unit>, v: Option<u64>) {
        if let Some(v) = v {
            self.gauge(name, help, unit)
                .push((Vec::new(), Value::Int(v)));
        }
    }
}

/// A path as a label value: the path itself, or (`[metrics] paths = false`, for shared hosts)
/// a stable short hash of it (`h-` and 12 hex digits of its FNV-1a hash), the same on every
/// host and in every version, so series stay joinable without naming anyone's projects.
fn path_label(p: &Path, paths: bool) -> String {
    if paths {
        return p.to_string_lossy().into_owned();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cachekeeper_core::pathcodec::encode(p).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("h-{:012x}", h >> 16)
}

fn secs_of(t: Option<std::time::SystemTime>) -> Option<u64> {
    t?.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// The families, in the order they are exported.
fn collect(e: &Exposition, process: Option<ProcessFacts>) -> Vec<Family> {
    let mut f = Families::default();
    f.gauge(
        "cachekeeper_build_info",
        "The running cachekeeper (always 1).",
        None,
    )
    .push((
        vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        Value::Int(1),
    ));
    runs(&mut f, e);
    if let Some(v) = &e.status {
        status(&mut f, v, e.max_target_dirs, e.paths);
    }
    if let Some(p) = process {
        process_families(&mut f, p);
    }
    f.0
}

fn runs(f: &mut Families, e: &Exposition) {
    let c = &e.counters;
    let s = f.counter(
        "cachekeeper_reclaimed",
        "Bytes the daemon's runs freed, by cache, rule and trigger, since it started.",
        Some(Unit::Bytes),
    );
    for ((cache, rule, trigger), b) in &c.reclaimed {
        s.push((
            vec![
                ("cache", (*cache).to_string()),
                ("rule", rule.name().to_string()),
                ("trigger", trigger.clone()),
            ],
            Value::Int(*b),
        ));
    }
    let s = f.counter(
        "cachekeeper_runs",
        "Runs by trigger and outcome, since the daemon started.",
        None,
    );
    for ((trigger, outcome), n) in &c.runs {
        s.push((
            vec![
                ("trigger", trigger.clone()),
                ("outcome", outcome.name().to_string()),
            ],
            Value::Int(*n),
        ));
    }
    f.0.push(Family {
        name: "cachekeeper_run_duration",
        help: "How long runs took.",
        unit: Some(Unit::Seconds),
        data: Data::Histogram(c.duration.clone()),
    });
    f.one(
        "cachekeeper_last_run_timestamp",
        "When the last run started.",
        Some(Unit::Seconds),
        c.last_run,
    );
    f.one(
        "cachekeeper_last_success_timestamp",
        "When the last real run that failed nothing started.",
        Some(Unit::Seconds),
        c.last_success,
    );
    let s = f.counter(
        "cachekeeper_errors",
        "Errors by kind, since the daemon started.",
        None,
    );
    for (kind, n) in &c.errors {
        s.push((vec![("kind", kind.name().to_string())], Value::Int(*n)));
    }
}

fn status(f: &mut Families, v: &SurveyView, cap: usize, paths: bool) {
    let daemon = v.daemon.as_ref();
    f.one(
        "cachekeeper_measured_timestamp",
        "When the numbers below were measured.",
        Some(Unit::Seconds),
        secs_of(daemon.and_then(|d| d.measured_at)),
    );
    f.one(
        "cachekeeper_cargo_used",
        "Bytes all target dirs take on disk.",
        Some(Unit::Bytes),
        Some(v.total.bytes),
    );
    f.one(
        "cachekeeper_cargo_reclaimable",
        "Bytes a run now would free from the target dirs.",
        Some(Unit::Bytes),
        Some(v.total.reclaimable_bytes),
    );
    f.gauge(
        "cachekeeper_cargo_rebuild",
        "Compile seconds it would take to get back what a run now frees from the target dirs (the budgets' part: budget=\"true\"), estimated from each unit's last compile.",
        Some(Unit::Seconds),
    )
    .extend([
        (
            vec![("budget", "false".to_string())],
            Value::Float(v.total.rebuild_seconds - v.total.budget_rebuild_seconds),
        ),
        (
            vec![("budget", "true".to_string())],
            Value::Float(v.total.budget_rebuild_seconds),
        ),
    ]);
    f.one(
        "cachekeeper_cargo_budget",
        "The total budget of the target dirs.",
        Some(Unit::Bytes),
        v.total.budget_bytes,
    );
    f.one(
        "cachekeeper_target_dirs",
        "Target dirs found under the roots.",
        None,
        Some(v.targets.len() as u64),
    );
    target_dirs(f, v, cap, paths);
    let s = f.gauge(
        "cachekeeper_measurement_errors",
        "What the last measurement could not read: target dirs, and directories the search could not enter.",
        None,
    );
    s.push((
        vec![("kind", "target-dir".into())],
        Value::Int(v.failed.len() as u64),
    ));
    s.push((
        vec![("kind", "search".into())],
        Value::Int(v.search_errors.len() as u64),
    ));
    filesystems(f, v, paths);
    buildkit(f, v);
    if let Some(d) = daemon {
        let t = &d.tracking;
        f.one(
            "cachekeeper_units_watched",
            "Units whose uses are recorded exactly (inotify).",
            None,
            Some(t.watched_units as u64),
        );
        f.one(
            "cachekeeper_units_atime_fallback",
            "Units that could not be watched: their last use comes from access times.",
            None,
            Some(t.unwatched_units as u64),
        );
        f.counter(
            "cachekeeper_uses_recorded",
            "Uses of units recorded (one per unit and build), since the daemon started.",
            None,
        )
        .push((Vec::new(), Value::Int(t.uses)));
        let walks = f.counter(
            "cachekeeper_index_walks",
            "Target dirs walked since the daemon started, by why: a full walk (start, full-rescan-interval, overflow, config, refresh, retry, no-watches) or what changed (changed, new-target-dir, watch-limit); the rest of the time the index is kept current by inotify events.",
            None,
        );
        for (reason, n) in &d.index.walks {
            walks.push((vec![("reason", reason.clone())], Value::Int(*n)));
        }
        f.one(
            "cachekeeper_config_last_reload_successful",
            "Whether the config file validated when last (re)loaded: 1, or 0 (the previous one is in force).",
            None,
            Some(u64::from(d.config_error.is_none())),
        );
    }
}

/// Per target dir, the largest `cap` with their own `path`; the rest summed under [`OTHER`].
fn target_dirs(f: &mut Families, v: &SurveyView, cap: usize, paths: bool) {
    let mut by_size: Vec<_> = v.targets.iter().collect();
    by_size.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    let (own, rest) = by_size.split_at(cap.min(by_size.len()));
    let series = |value: &dyn Fn(&crate::report::TargetView) -> Option<u64>, sum_rest: bool| {
        let mut s: Vec<(Labels, Value)> = own
            .iter()
            .filter_map(|t| {
                let mut labels = vec![("path", path_label(&t.path, paths))];
                if !t.mountpoint.as_os_str().is_empty() {
                    labels.push(("mountpoint", t.mountpoint.to_string_lossy().into_owned()));
                }
                value(t).map(|b| (labels, Value::Int(b)))
            })
            .collect();
        if sum_rest && !rest.is_empty() {
            let total = rest
                .iter()
                .filter_map(|t| value(t))
                .fold(0u64, u64::saturating_add);
            s.push((vec![("path", OTHER.to_string())], Value::Int(total)));
        }
        s
    };
    *f.gauge(
        "cachekeeper_target_dir_used",
        "Bytes a target dir takes on disk.",
        Some(Unit::Bytes),
    ) = series(&|t| Some(t.bytes), true);
    *f.gauge(
        "cachekeeper_target_dir_reclaimable",
        "Bytes a run now would free from a target dir.",
        Some(Unit::Bytes),
    ) = series(&|t| Some(t.reclaimable_bytes), true);
    *f.gauge(
        "cachekeeper_target_dir_budget",
        "A target dir's budget.",
        Some(Unit::Bytes),
    ) = series(&|t| t.budget_bytes, false);
}

/// node_exporter's labels, so `cachekeeper_filesystem_avail_bytes` joins
/// `node_filesystem_avail_bytes` on `device, fstype, mountpoint`; a mount that could not be
/// named keeps the measured path as its `mountpoint`.
fn filesystems(f: &mut Families, v: &SurveyView, paths: bool) {
    let each =
        |value: &dyn Fn(&crate::report::FilesystemView) -> Option<u64>| -> Vec<(Labels, Value)> {
            v.filesystems
                .iter()
                .filter_map(|fs| {
                    let mountpoint = if fs.mountpoint.as_os_str().is_empty() {
                        path_label(&fs.path, paths)
                    } else {
                        fs.mountpoint.to_string_lossy().into_owned()
                    };
                    let labels = vec![
                        ("device", fs.device.clone()),
                        ("fstype", fs.fstype.clone()),
                        ("mountpoint", mountpoint),
                    ];
                    value(fs).map(|b| (labels, Value::Int(b)))
                })
                .collect()
        };
    *f.gauge(
        "cachekeeper_filesystem_avail",
        "Bytes of a filesystem holding target dirs that unprivileged users may still write (f_bavail, what df shows).",
        Some(Unit::Bytes),
    ) = each(&|fs| Some(fs.free_bytes));
    *f.gauge(
        "cachekeeper_filesystem_free",
        "Free bytes of a filesystem holding target dirs, root's reserve included (f_bfree).",
        Some(Unit::Bytes),
    ) = each(&|fs| Some(fs.all_free_bytes));
    *f.gauge(
        "cachekeeper_filesystem_size",
        "Size of a filesystem holding target dirs.",
        Some(Unit::Bytes),
    ) = each(&|fs| Some(fs.total_bytes));
    *f.gauge(
        "cachekeeper_filesystem_min_free",
        "The free-space watermark ([disk] min-free) of a filesystem, compared with avail.",
        Some(Unit::Bytes),
    ) = each(&|fs| fs.min_free_bytes);
}

fn buildkit(f: &mut Families, v: &SurveyView) {
    let b = &v.buildkit;
    if b.state == BuildkitState::Off {
        return;
    }
    f.one(
        "cachekeeper_buildkit_engine_up",
        "Whether the Docker engine answered the last measurement (1) or not (0).",
        None,
        Some(u64::from(b.state == BuildkitState::Ok)),
    );
    if b.state != BuildkitState::Ok {
        return;
    }
    let mut reclaimable: BTreeMap<&str, u64> = b.by_type.keys().map(|k| (k.as_str(), 0)).collect();
    for r in b.items.iter().filter(|r| !r.in_use && !r.shared) {
        *reclaimable.entry(r.kind.as_str()).or_default() += r.size;
    }
    *f.gauge(
        "cachekeeper_buildkit_used",
        "Bytes of the BuildKit cache, by record type.",
        Some(Unit::Bytes),
    ) = b
        .by_type
        .iter()
        .map(|(t, u)| (vec![("type", t.clone())], Value::Int(u.bytes)))
        .collect();
    *f.gauge(
        "cachekeeper_buildkit_reclaimable",
        "Bytes of BuildKit records neither in use nor shared with an image, by record type.",
        Some(Unit::Bytes),
    ) = reclaimable
        .iter()
        .map(|(t, b)| (vec![("type", (*t).to_string())], Value::Int(*b)))
        .collect();
    f.one(
        "cachekeeper_buildkit_budget",
        "The BuildKit cache's budget.",
        Some(Unit::Bytes),
        b.budget_bytes,
    );
}

fn process_families(f: &mut Families, p: ProcessFacts) {
    f.one(
        "process_resident_memory",
        "Resident memory of the daemon.",
        Some(Unit::Bytes),
        Some(p.resident_bytes),
    );
    f.counter(
        "process_cpu",
        "CPU time the daemon used, user and system.",
        Some(Unit::Seconds),
    )
    .push((Vec::new(), Value::Float(p.cpu_seconds)));
    f.one(
        "process_open_fds",
        "File descriptors the daemon holds open.",
        None,
        p.open_fds,
    );
    f.one(
        "process_start_time",
        "When the daemon started, in seconds since the epoch.",
        Some(Unit::Seconds),
        Some(p.start_time_seconds),
    );
}

/// Encodes the families; a collector, so the registry asks for them when it encodes.
#[derive(Debug)]
struct Collected(Vec<Family>);

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let kind = match family.data {
                Data::Counter(_) => MetricType::Counter,
                Data::Gauge(_) => MetricType::Gauge,
                Data::Histogram(_) => MetricType::Histogram,
            };
            let mut m =
                encoder.encode_descriptor(family.name, family.help, family.unit.as_ref(), kind)?;
            match &family.data {
                Data::Histogram(h) => {
                    // Every bound, observed or not (no runs yet: all zero).
                    let buckets: Vec<(f64, u64)> = DURATION_BUCKETS
                        .iter()
                        .copied()
                        .chain([f64::INFINITY])
                        .enumerate()
                        .map(|(i, bound)| (bound, h.buckets.get(i).copied().unwrap_or(0)))
                        .collect();
                    m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        h.sum, h.count, &buckets, None,
                    )?;
                }
                Data::Counter(series) | Data::Gauge(series) => {
                    let counter = matches!(family.data, Data::Counter(_));
                    for (labels, value) in series {
                        encode_value(m.encode_family(labels)?, counter, *value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn encode_value(
    enc: prometheus_client::encoding::MetricEncoder<'_>,
    counter: bool,
    value: Value,
) -> Result<(), std::fmt::Error> {
    // Adding +0 turns the -0 a sum of nothing gives (Rust sums floats from -0) into 0.
    let value = match value {
        Value::Float(v) => Value::Float(v + 0.0),
        v @ Value::Int(_) => v,
    };
    match (counter, value) {
        (true, Value::Int(v)) => ConstCounter::new(v).encode(enc),
        (true, Value::Float(v)) => ConstCounter::new(v).encode(enc),
        (false, Value::Int(v)) => ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX)).encode(enc),
        (false, Value::Float(v)) => ConstGauge::new(v).encode(enc),
    }
}

/// The exposition text.
pub fn render(e: &Exposition, format: Format, process: Option<ProcessFacts>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Collected(collect(e, process))));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    out
}
