//! `cachekeeper daemon`: the background service, a driver of [`crate::run`].
//!
//! It measures the target dirs and the BuildKit cache ([`index`]), records exactly when builds
//! use each unit ([`tracker`]), and runs the policy on its cron schedule, on disk pressure
//! ([`pressure`]) and when asked (`run-now`) ([`runs`]); it never cleans at start-up. Runs are
//! recorded in the state dir ([`state`]). The CLI talks to it over a Unix socket ([`server`],
//! [`crate::protocol`]), and gets views back, which it renders.
//!
//! Lifecycle: READY is sent to systemd once the first index is built and the socket listens;
//! SIGHUP reloads the config (an invalid one is reported and the old one kept); SIGTERM or
//! SIGINT stop it: a run in progress finishes the unit it is deleting and stops, within
//! `stop-timeout`; nothing is left half-removed.
//!
//! The daemon owns the one runtime of its process: nothing below builds another. The entry
//! point is [`serve`], which tests can start in-process; [`run`] adds the process's signals.
//!
//! Invariant: the daemon never imports the guard or the CLI.

pub mod builds;
mod exporter;
mod index;
mod persist;
pub mod pressure;
mod runs;
pub mod sdnotify;
mod server;
pub mod state;
pub mod tracker;
mod walks;
mod watches;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::{Request, Response};
use crate::report::{HealthView, HistoryView, SCHEMA_VERSION, SurveyView};
use cachekeeper_core::config::{self, Config, Env};
use cachekeeper_core::model::LastUse;
use cachekeeper_core::units::rfc3339;
use cachekeeper_sys::measure::inventory::FingerprintCache;
use pressure::Pressure;
use runs::Running;
use tracker::Tracker;

/// How the daemon was started.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--config`, if given (reloads read the same place).
    pub config_path: Option<PathBuf>,
    pub env: Env,
}

/// What can be asked of a running daemon from inside the process (signals do the same).
#[derive(Debug)]
pub enum Command {
    Stop,
    Reload,
}

/// Runs the daemon on `runtime` (the one its process owns) with the process's signals, until
/// SIGTERM or SIGINT.
pub fn run(options: Options, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    // A long-lived process whose walks allocate on many threads: few arenas, trimmed after each
    // refresh (`Daemon::measured`), so it idles near what its index holds.
    cachekeeper_sys::os::memory::limit_arenas();
    let (tx, rx) = mpsc::unbounded_channel();
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
        let forward = tx.clone();
        tokio::spawn(async move {
            loop {
                let cmd = tokio::select! {
                    _ = term.recv() => Command::Stop,
                    _ = int.recv() => Command::Stop,
                    _ = hup.recv() => Command::Reload,
                };
                if forward.send(cmd).is_err() {
                    break;
                }
            }
        });
        serve(options, rx).await
    })
}

/// A request from the socket, with where its answer goes.
pub(crate) type Ask = (Request, oneshot::Sender<Response>);

struct Daemon {
    options: Options,
    config: Config,
    config_error: Option<String>,
    state: persist::Persist,
    /// Run history, read once at start and kept here: status never re-reads it.
    history: state::History,
    socket: PathBuf,
    uses: Arc<Mutex<LastUse>>,
    cache: Arc<FingerprintCache>,
    tracker: Arc<Mutex<Tracker>>,
    /// A rescan under way (in the background: the socket answers meanwhile).
    rescanning: Option<index::Rescanning>,
    /// The target dirs as last measured, what is taken as it was, and why walks happened.
    index: walks::Index,
    /// Target dirs a run of ours acted in since the last refresh.
    acted: std::collections::HashSet<PathBuf>,
    /// A full walk asked for while a refresh was under way, why, and who waits for it.
    full_pending: Option<&'static str>,
    full_waiters: Vec<oneshot::Sender<Response>>,
    /// When to refresh what changed (set by the tracker's news, pushed back while a build
    /// holds a lock).
    refresh_at: Option<Instant>,
    /// Target dirs watched whole, and since when.
    watched: cachekeeper_core::model::Watched,
    notifier: sdnotify::Notifier,
    started: SystemTime,
    last_run: Option<SystemTime>,
    next_run: Option<SystemTime>,
    pressure: HashMap<u64, Pressure>,
    /// Paths on every filesystem to watch for pressure (target dirs, roots, Docker's root).
    watch_paths: Vec<PathBuf>,
    /// The latest measurement, sent (with the daemon's live state) when asked.
    view: Option<SurveyView>,
    measured_at: Option<SystemTime>,
    running: Option<Running>,
    queued: Vec<(String, bool, Option<oneshot::Sender<Response>>)>,
    errors: Vec<String>,
    next_rescan: Instant,
    next_poll: Instant,
    next_save: Instant,
    next_watchdog: Option<(Instant, Duration)>,
    exporter: exporter::Exporter,
}

/// When the next scheduled run starts: the schedule's next time after `after`, plus this
/// host's share of `schedule-jitter` (never earlier than the schedule says).
fn next_run(config: &Config, after: SystemTime) -> Option<SystemTime> {
    let jitter = config.daemon.schedule_jitter;
    let at = config
        .daemon
        .schedule
        .next_after(after.checked_sub(jitter).unwrap_or(after))?;
    // The run of a time whose delay has not passed yet is still ahead.
    let due = at + host_share(jitter);
    if due > after {
        Some(due)
    } else {
        config
            .daemon
            .schedule
            .next_after(after)
            .map(|t| t + host_share(jitter))
    }
}

/// This host's delay within `jitter`: the same every time (from `/etc/machine-id`, else the
/// host name), spread evenly over hosts.
pub(super) fn host_share(jitter: Duration) -> Duration {
    static SHARE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let share = *SHARE.get_or_init(|| {
        let id =
            cachekeeper_sys::readfile::read(std::path::Path::new("/etc/machine-id"), 4096, true)
                .ok()
                .flatten()
                .or_else(|| {
                    cachekeeper_sys::readfile::read(
                        std::path::Path::new("/proc/sys/kernel/hostname"),
                        256,
                        true,
                    )
                    .ok()
                    .flatten()
                })
                .unwrap_or_default();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in id {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        #[allow(clippy::cast_precision_loss)]
        let share = (h >> 11) as f64 / (1u64 << 53) as f64;
        share
    });
    jitter.mul_f64(share)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs the daemon until a [`Command::Stop`] arrives on `commands` (signals arrive that way;
/// a test can send them itself).
pub async fn serve(
    options: Options,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> anyhow::Result<()> {
    let config = cachekeeper_sys::configfile::load(options.config_path.as_deref(), &options.env)
        .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    let state = persist::Persist::open(&crate::protocol::state_dir(
        config.daemon.state_dir.as_deref(),
    ));
    let socket = crate::protocol::socket_path(config.daemon.socket.as_deref());
    let listener = server::bind(&socket)?;
    let uses = Arc::new(Mutex::new(state.load_uses()));
    let history = state.history();
    let exporter = exporter::Exporter::start(&config.metrics, &history.last(usize::MAX))?;
    let tracker = Tracker::new(Arc::clone(&uses), config.daemon.track_access);
    let now = Instant::now();
    let mut d = Daemon {
        next_run: next_run(&config, SystemTime::now()),
        options,
        config_error: None,
        state,
        history,
        socket,
        uses,
        cache: Arc::new(FingerprintCache::default()),
        tracker: Arc::new(Mutex::new(tracker)),
        rescanning: None,
        index: walks::Index::default(),
        acted: std::collections::HashSet::new(),
        full_pending: None,
        full_waiters: Vec::new(),
        refresh_at: None,
        watched: cachekeeper_core::model::Watched::new(),
        notifier: sdnotify::Notifier::from_env(),
        started: SystemTime::now(),
        last_run: None,
        pressure: HashMap::new(),
        watch_paths: Vec::new(),
        view: None,
        measured_at: None,
        running: None,
        queued: Vec::new(),
        errors: Vec::new(),
        next_rescan: now,
        next_poll: now,
        next_save: now + Duration::from_secs(10),
        next_watchdog: sdnotify::Notifier::watchdog_interval().map(|i| (now, i)),
        exporter,
        config,
    };
    d.last_run = d
        .history
        .last(1)
        .last()
        .map(|r| cachekeeper_core::model::time_of(r.started_unix));
    for w in &d.config.warnings {
        tracing::warn!("config: {w}");
    }
    tracing::info!(
        socket = %d.socket.display(),
        state_dir = %d.state.path().display(),
        config = %d.config.source,
        schedule = d.config.daemon.schedule.text(),
        "starting"
    );
    d.rescan_now().await;
    d.notifier
        .notify(&format!("READY=1\nSTATUS={}", d.summary()));
    tracing::info!(
        "ready; next run {}",
        d.next_run
            .map_or_else(|| "never".into(), cachekeeper_core::units::local_time)
    );

    let (ask_tx, mut ask_rx) = mpsc::unbounded_channel::<Ask>();
    let accept = tokio::spawn(server::accept_loop(listener, ask_tx));
    let changes = lock(&d.tracker).changes();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job_done = async {
            match d.running.as_mut() {
                Some(r) => (&mut r.done).await.ok(),
                None => std::future::pending().await,
            }
        };
        let refresh_due = async {
            match d.refresh_at {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let rescan_done = async {
            match d.rescanning.as_mut() {
                Some(r) => r.done().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Reload) => d.reload(),
                Some(Command::Stop) | None => break,
            },
            Some((request, reply)) = ask_rx.recv() => d.answer(request, reply),
            outcome = job_done => match outcome {
                Some(outcome) => d.finish(outcome),
                None => d.job_died(),
            },
            measured = rescan_done => {
                if let Some(r) = d.rescanning.take() {
                    match measured {
                        Some(m) => d.measured(m, r),
                        None => d.rescan_failed(r),
                    }
                }
            }
            () = changes.notified() => {
                d.refresh_at.get_or_insert_with(|| Instant::now() + index::SETTLE);
            }
            () = refresh_due => d.refresh_on_events(),
            _ = tick.tick() => d.tick().await,
        }
    }
    d.stop().await;
    accept.abort();
    let _ = std::fs::remove_file(&d.socket);
    Ok(())
}

impl Daemon {
    fn summary(&self) -> String {
        let running = self
            .running
            .as_ref()
            .map_or(String::new(), |r| format!("running ({}); ", r.trigger));
        let next = self
            .next_run
            .map_or_else(|| "never".into(), cachekeeper_core::units::local_time);
        let last = self.history.last(1).pop().map_or_else(
            || "no runs yet".to_string(),
            |r| {
                format!(
                    "last run reclaimed {}",
                    cachekeeper_core::units::human_bytes(r.reclaimed_bytes)
                )
            },
        );
        format!("{running}{last}; next run {next}")
    }

    fn remember_error(&mut self, e: String) {
        tracing::error!("{e}");
        self.errors
            .push(format!("{} {e}", rfc3339(SystemTime::now())));
        let excess = self.errors.len().saturating_sub(10);
        self.errors.drain(..excess);
    }

    fn reload(&mut self) {
        let loaded = cachekeeper_sys::configfile::load(
            self.options.config_path.as_deref(),
            &self.options.env,
        );
        // An empty file where one with content stood is a file half written (or truncated by
        // accident), not a wish for the built-in defaults: roots, budgets and schedule would
        // all change without a word.
        if let Ok(c) = &loaded
            && c.empty_file
            && !self.config.empty_file
            && matches!(self.config.source, config::Source::File(_))
        {
            let msg = format!(
                "config reload refused, keeping the previous one: {} is empty now (it set keys when loaded); to run on the built-in defaults, say so (copy `cachekeeper check-config --print-default` into it)",
                c.source
            );
            self.config_error = Some(msg.clone());
            self.remember_error(msg);
            return;
        }
        match loaded {
            Ok(c) => {
                tracing::info!(config = %c.source, "config reloaded");
                for w in &c.warnings {
                    tracing::warn!("config: {w}");
                }
                self.next_run = next_run(&c, SystemTime::now());
                if let Err(e) = self.exporter.reconfigure(&c.metrics) {
                    self.remember_error(format!("metrics: {e}"));
                }
                self.config = c;
                self.config_error = None;
                self.full_pending = Some("config");
                self.next_rescan = Instant::now();
            }
            Err(e) => {
                self.exporter.error(crate::metrics::ErrorKind::Reload);
                let msg = format!("config reload failed, keeping the previous one: {e}");
                self.config_error = Some(msg.clone());
                self.remember_error(msg);
            }
        }
    }

    fn save(&mut self) {
        let uses = Arc::clone(&self.uses);
        let mut uses = lock(&uses);
        let wrote = uses.dirty;
        if !self.state.save_uses(&mut uses) {
            self.exporter.error(crate::metrics::ErrorKind::State);
        }
        drop(uses);
        if wrote {
            // The record was written from one buffer of JSON (a megabyte at 10,000 units),
            // freed now: given back, rather than held until the next refresh.
            cachekeeper_sys::os::memory::release_free();
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        let wall = SystemTime::now();
        if let Some((at, every)) = self.next_watchdog
            && now >= at
        {
            self.notifier.notify("WATCHDOG=1");
            self.next_watchdog = Some((now + every, every));
        }
        if now >= self.next_save {
            self.save();
            self.next_save = now + Duration::from_secs(10);
        }
        if self.next_run.is_some_and(|t| wall >= t) {
            self.next_run = next_run(&self.config, wall);
            // No scheduled run within min-interval of the previous run of any kind.
            let quiet = self.last_run.is_none_or(|t| {
                wall.duration_since(t).unwrap_or_default() >= self.config.daemon.min_interval
            });
            if quiet {
                self.start("schedule", false, None);
            } else {
                tracing::debug!("scheduled run skipped: within min-interval of the last run");
            }
        }
        if now >= self.next_poll {
            self.next_poll = now + self.config.daemon.poll_interval;
            self.poll_pressure(wall);
            self.publish_metrics(false);
        }
        if now >= self.next_rescan && self.running.is_none() {
            self.refresh(None, None);
        }
    }

    fn poll_pressure(&mut self, now: SystemTime) {
        let Some(min_free) = self.config.disk.min_free else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        let mut fire = None;
        for p in self.watch_paths.clone() {
            let Ok(fs) = cachekeeper_sys::os::disk::measure(&p) else {
                continue;
            };
            if !seen.insert(fs.dev) {
                continue;
            }
            let watermark = min_free.resolve(fs.total_bytes);
            let hysteresis = self.config.daemon.hysteresis.resolve(fs.total_bytes);
            let trigger = self.pressure.entry(fs.dev).or_default();
            if trigger.sample(
                fs.free_bytes,
                watermark,
                hysteresis,
                now,
                self.last_run,
                self.config.daemon.min_interval,
            ) && self.running.is_none()
            {
                fire = Some((p, fs.free_bytes, watermark));
            }
        }
        if let Some((p, free, watermark)) = fire {
            tracing::warn!(
                path = %p.display(),
                free = free,
                watermark = watermark,
                "disk pressure: {} free, under the {} watermark; running the policy",
                cachekeeper_core::units::human_bytes(free),
                cachekeeper_core::units::human_bytes(watermark)
            );
            self.start("pressure", false, None);
        }
    }

    fn answer(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let response = match request {
            Request::Health => Response::Health(match (&self.config_error, self.state.problem()) {
                (Some(e), _) => HealthView::unhealthy(Some(std::process::id()), e),
                (None, Some(p)) => {
                    HealthView::unhealthy(Some(std::process::id()), &format!("degraded: {p}"))
                }
                (None, None) => HealthView {
                    version: SCHEMA_VERSION,
                    healthy: true,
                    pid: Some(std::process::id()),
                    error: None,
                    activity: match (&self.running, &self.rescanning) {
                        (Some(r), _) => Some(format!("running ({})", r.trigger)),
                        (None, Some(_)) => Some("rescanning".into()),
                        (None, None) => None,
                    },
                },
            }),
            Request::Status { refresh } => {
                if self.view.is_none() {
                    self.refresh(None, Some(reply));
                    return;
                }
                if refresh {
                    self.refresh(Some(walks::Kind::Full("refresh")), Some(reply));
                    return;
                }
                self.status_response()
            }
            Request::History { limit } => {
                self.state.refresh(&mut self.history);
                Response::History(HistoryView::new(
                    self.history.last(limit),
                    self.history.totals(),
                ))
            }
            Request::RunNow { dry_run } => {
                self.start("manual", dry_run, Some(reply));
                return;
            }
            Request::Uses => {
                lock(&self.tracker).flush();
                let uses = lock(&self.uses).clone();
                Response::Uses(Box::new(crate::report::UsesView::new(uses, &self.watched)))
            }
            Request::Record(record) => self.record(*record),
        };
        let _ = reply.send(response);
    }

    /// Keeps the record of a run made elsewhere: history, metrics, the textfile.
    fn record(&mut self, record: crate::report::RecordView) -> Response {
        let crate::report::RecordView { run, errors } = record;
        tracing::info!(
            trigger = run.trigger,
            origin = run.origin,
            reclaimed = run.reclaimed_bytes,
            "a {} run reclaimed {}",
            run.origin,
            cachekeeper_core::units::human_bytes(run.reclaimed_bytes)
        );
        self.exporter.observe_counted(&run, errors);
        let kept = self.state.append(&mut self.history, run);
        if kept.is_err() {
            self.exporter.error(crate::metrics::ErrorKind::State);
        }
        self.publish_metrics(true);
        match kept {
            Ok(()) => Response::Recorded,
            Err(e) => Response::refused(&e),
        }
    }

    async fn stop(&mut self) {
        self.notifier.notify("STOPPING=1");
        tracing::info!("stopping");
        if let Some(run) = self.running.as_mut() {
            run.stop.store(true, Ordering::SeqCst);
            let deadline = self.config.daemon.stop_timeout;
            match tokio::time::timeout(deadline, &mut run.done).await {
                Ok(Ok(outcome)) => self.finish(outcome),
                _ => tracing::error!(
                    "the run did not stop within {}s (a request to the Docker engine may hang); leaving",
                    deadline.as_secs()
                ),
            }
        }
        self.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A delay only, never earlier: the next run is the schedule's time plus this host's share
    /// of the jitter, and a time whose delay has not passed yet is still the next run.
    #[test]
    fn schedule_jitter_delays_and_never_runs_early() {
        let env = Env {
            home: Some(PathBuf::from("/home/u")),
            ..Env::default()
        };
        let mut c = config::parse(
            "[daemon]\nschedule = \"0 3 * * *\"\nschedule-jitter = \"30m\"\n",
            config::Source::Embedded,
            &env,
        )
        .unwrap();
        let share = host_share(Duration::from_secs(1800));
        assert!(share < Duration::from_secs(1800));
        assert_eq!(
            host_share(Duration::from_secs(1800)),
            share,
            "the same every time"
        );
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let plain = c.daemon.schedule.next_after(t0).unwrap();
        assert_eq!(next_run(&c, t0), Some(plain + share));
        // Just after the scheduled time, before its delay passed: still that run.
        let just_after = plain + Duration::from_secs(1);
        if share > Duration::from_secs(1) {
            assert_eq!(next_run(&c, just_after), Some(plain + share));
        }
        // After it: the next day's.
        let after = plain + share + Duration::from_secs(1);
        assert_eq!(
            next_run(&c, after),
            Some(c.daemon.schedule.next_after(after).unwrap() + share)
        );
        c.daemon.schedule_jitter = Duration::ZERO;
        assert_eq!(next_run(&c, t0), Some(plain));
    }
}
