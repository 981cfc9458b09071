//! `cachekeeper daemon`: the background service.
//!
//! It measures the target dirs and the BuildKit cache, records exactly when builds use each
//! unit (inotify, see [`tracker`]), and runs the policy on its cron schedule, on disk pressure
//! and when asked (`run-now`); it never cleans at start-up. Runs are recorded in the state dir
//! ([`state`]). The CLI talks to it over a Unix socket ([`control`]).
//!
//! Lifecycle: READY is sent to systemd once the first index is built and the socket listens;
//! SIGHUP reloads the config (an invalid one is reported and the old one kept); SIGTERM or
//! SIGINT stop it: a run in progress finishes the unit it is deleting and stops, within
//! `stop-timeout`; nothing is left half-removed.
//!
//! The entry point is [`serve`], which tests start in-process; [`run`] adds the process's
//! signals.

pub mod control;
pub mod pressure;
pub mod sdnotify;
mod server;
pub mod state;
pub mod tracker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use crate::config::{self, Config, Env};
use crate::inventory::{FingerprintCache, TargetDir};
use crate::job::{self, Job};
use crate::lastuse::Signal;
use crate::progress::Progress;
use crate::report::{self, CleanView, DaemonInfo, SurveyView};
use crate::survey::{self, Sides, Survey};
use crate::units::rfc3339;

const BOTH: Sides = Sides {
    cargo: true,
    buildkit: true,
};
use crate::sweep::{Mode, Observer};
use control::{Request, Response};
use pressure::Pressure;
use state::{LastUse, RunRecord, StateDir};
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

/// A non-empty path from the environment.
fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A directory systemd passes (`$STATE_DIRECTORY`, `$RUNTIME_DIRECTORY`): the first, if several
/// are listed, separated by `:`.
fn systemd_dir(key: &str) -> Option<PathBuf> {
    let list = env_path(key)?;
    let first = list
        .to_string_lossy()
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    Some(PathBuf::from(first))
}

/// The default state dir: `$STATE_DIRECTORY` (systemd), `/var/lib/cachekeeper` as root,
/// else `$XDG_STATE_HOME/cachekeeper` (or `~/.local/state/cachekeeper`).
#[must_use]
pub fn state_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(d) = systemd_dir("STATE_DIRECTORY") {
        return d;
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/cachekeeper");
    }
    env_path("XDG_STATE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("cachekeeper")
}

/// Runs the daemon on `runtime` (the one its process owns) with the process's signals, until
/// SIGTERM or SIGINT.
pub fn run(options: Options, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
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

/// A run in progress.
struct Running {
    trigger: String,
    dry_run: bool,
    started: SystemTime,
    clock: Instant,
    stop: Arc<AtomicBool>,
    waiters: Vec<oneshot::Sender<Response>>,
    /// Closed without an outcome if the job panicked.
    done: oneshot::Receiver<job::Outcome>,
}

/// A request from the socket, with where its answer goes.
pub(crate) type Ask = (Request, oneshot::Sender<Response>);

struct Daemon {
    options: Options,
    config: Config,
    config_error: Option<String>,
    state: StateDir,
    /// Run history, read once at start and kept here: status never re-reads it.
    history: state::History,
    socket: PathBuf,
    uses: Arc<Mutex<LastUse>>,
    cache: Arc<FingerprintCache>,
    tracker: Tracker,
    notifier: sdnotify::Notifier,
    started: SystemTime,
    last_run: Option<SystemTime>,
    next_run: Option<SystemTime>,
    pressure: HashMap<u64, Pressure>,
    /// Paths on every filesystem to watch for pressure (target dirs, roots, Docker's root).
    watch_paths: Vec<PathBuf>,
    /// The latest measurement, rendered (with the daemon's live state) when asked.
    view: Option<SurveyView>,
    measured_at: Option<SystemTime>,
    running: Option<Running>,
    queued: Vec<(String, bool, Option<oneshot::Sender<Response>>)>,
    errors: Vec<String>,
    next_rescan: Instant,
    next_poll: Instant,
    next_save: Instant,
    next_watchdog: Option<(Instant, Duration)>,
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
    let config = config::load(options.config_path.as_deref(), &options.env)
        .map_err(|e| anyhow::anyhow!("invalid config: {e}"))?;
    let state = StateDir::open(&state_dir(config.daemon.state_dir.as_deref()))
        .context("opening the state dir")?;
    let socket = control::socket_path(config.daemon.socket.as_deref());
    let listener = server::bind(&socket)?;
    let uses = Arc::new(Mutex::new(state.load_uses()));
    let history = state.history(true);
    let tracker = Tracker::new(Arc::clone(&uses), config.daemon.track_access);
    let now = Instant::now();
    let mut d = Daemon {
        next_run: config.daemon.schedule.next_after(SystemTime::now()),
        options,
        config_error: None,
        state,
        history,
        socket,
        uses,
        cache: Arc::new(FingerprintCache::default()),
        tracker,
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
        config,
    };
    d.last_run = d
        .history
        .last(1)
        .last()
        .map(|r| state::time_of(r.started_unix));
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
    d.rescan().await;
    d.notifier
        .notify(&format!("READY=1\nSTATUS={}", d.summary()));
    tracing::info!(
        "ready; next run {}",
        d.next_run
            .map_or_else(|| "never".into(), crate::units::local_time)
    );

    let (ask_tx, mut ask_rx) = mpsc::unbounded_channel::<Ask>();
    let accept = tokio::spawn(server::accept_loop(listener, ask_tx));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job_done = async {
            match d.running.as_mut() {
                Some(r) => (&mut r.done).await.ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            cmd = commands.recv() => match cmd {
                Some(Command::Reload) => d.reload(),
                Some(Command::Stop) | None => break,
            },
            Some((request, reply)) = ask_rx.recv() => d.answer(request, reply).await,
            outcome = job_done => match outcome {
                Some(outcome) => d.finish(outcome).await,
                None => d.job_died(),
            },
            _ = tick.tick() => d.tick().await,
        }
    }
    d.stop().await;
    accept.abort();
    let _ = std::fs::remove_file(&d.socket);
    Ok(())
}

/// Applies what the daemon knows of last use to a survey: the uses it recorded, and when it
/// first saw each unit (which holds off the stale rule for units it has not watched long);
/// a fully watched target dir has exact times even on a noatime mount.
fn apply_uses(survey: &mut Survey, uses: &Mutex<LastUse>, tracked: &[PathBuf], now: SystemTime) {
    let mut uses = lock(uses);
    for (i, t) in survey.targets.iter_mut().enumerate() {
        for u in &mut t.units {
            uses.observe(&t.path, &u.fingerprint_dir, now);
            if let Some(r) = uses.recorded(&t.path, &u.fingerprint_dir) {
                u.last_used = u.last_used.max(r);
            }
            u.first_seen = uses.first_seen(&t.path, &u.fingerprint_dir);
        }
        if tracked.contains(&t.path) {
            survey.signals[i] = Signal::Recorded;
        }
    }
}

/// The sweep's view of recorded uses: a unit a build read since the plan was made is kept.
struct Recorded {
    uses: Arc<Mutex<LastUse>>,
}

impl Observer for Recorded {
    fn recorded_use(&self, target: &TargetDir, fingerprint_dir: &Path) -> Option<SystemTime> {
        lock(&self.uses).recorded(&target.path, fingerprint_dir)
    }
}

impl Daemon {
    fn summary(&self) -> String {
        let running = self
            .running
            .as_ref()
            .map_or(String::new(), |r| format!("running ({}); ", r.trigger));
        let next = self
            .next_run
            .map_or_else(|| "never".into(), crate::units::local_time);
        let last = self.history.last(1).pop().map_or_else(
            || "no runs yet".to_string(),
            |r| {
                format!(
                    "last run reclaimed {}",
                    crate::units::human_bytes(r.reclaimed_bytes)
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
        match config::load(self.options.config_path.as_deref(), &self.options.env) {
            Ok(c) => {
                tracing::info!(config = %c.source, "config reloaded");
                for w in &c.warnings {
                    tracing::warn!("config: {w}");
                }
                self.next_run = c.daemon.schedule.next_after(SystemTime::now());
                self.config = c;
                self.config_error = None;
                self.next_rescan = Instant::now();
            }
            Err(e) => {
                let msg = format!("config reload failed, keeping the previous one: {e}");
                self.config_error = Some(msg.clone());
                self.remember_error(msg);
            }
        }
    }

    /// Measures everything again (no cleaning): the status index, watches, pressure paths.
    async fn rescan(&mut self) {
        if self.running.is_some() {
            return;
        }
        self.cache.begin();
        let (mut survey, _) = survey::measure(
            &self.config,
            &self.config.cargo.roots,
            BOTH,
            Arc::new(Progress::hidden()),
            Some(Arc::clone(&self.cache)),
        )
        .await;
        self.cache.end();
        let now = SystemTime::now();
        self.tracker.sync(&survey.targets, now);
        let tracked: Vec<PathBuf> = survey
            .targets
            .iter()
            .filter(|t| self.tracker.fully_tracked(&t.path))
            .map(|t| t.path.clone())
            .collect();
        apply_uses(&mut survey, &self.uses, &tracked, now);
        self.watch_paths = survey.targets.iter().map(|t| t.path.clone()).collect();
        self.watch_paths.extend(
            self.config
                .cargo
                .roots
                .iter()
                .filter(|r| r.exists())
                .cloned(),
        );
        if let crate::buildkit::Side::Ready(cache) = &survey.buildkit
            && let Some(root) = cache.root_dir().filter(|r| r.exists())
        {
            self.watch_paths.push(root.clone());
        }
        let plan = survey.plan(&survey::settings(&self.config), now);
        let bk_plan = survey.buildkit_plan(&self.config, now);
        let share = matches!(
            self.config.buildkit.budget,
            Some(config::SizeSpec::Percent(_))
        );
        let bk = report::BuildkitView::build(&survey.buildkit, bk_plan.as_ref(), share);
        let mut view = SurveyView::build(&survey, &plan, bk, self.config.source.to_string());
        self.measured_at = Some(now);
        view.source = "daemon";
        self.view = Some(view);
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        self.save();
    }

    fn info(&self) -> DaemonInfo {
        let runs = self.history.last(10);
        DaemonInfo {
            pid: std::process::id(),
            started: rfc3339(self.started),
            measured_at: self.measured_at.map(rfc3339),
            config_error: self.config_error.clone(),
            state_dir: self.state.path().to_path_buf(),
            socket: self.socket.clone(),
            schedule: self.config.daemon.schedule.text().to_string(),
            next_run: self.next_run.map(rfc3339),
            running: self
                .running
                .as_ref()
                .map(|r| format!("{} since {}", r.trigger, rfc3339(r.started))),
            pressure_armed: self.config.disk.min_free.is_some()
                && self.pressure.values().all(Pressure::armed),
            pressure: match self.config.disk.min_free {
                None => "off",
                Some(_) if self.pressure.values().all(Pressure::armed) => "armed",
                Some(_) => "disarmed",
            },
            tracking: self.tracker.stats(),
            totals: self.history.totals(),
            last_runs: runs,
            errors: self.errors.clone(),
        }
    }

    fn save(&mut self) {
        let saved = self.state.save_uses(&mut lock(&self.uses));
        if let Err(e) = saved {
            self.remember_error(format!("cannot save last-use times: {e}"));
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
            self.next_run = self.config.daemon.schedule.next_after(wall);
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
        }
        if now >= self.next_rescan && self.running.is_none() {
            self.rescan().await;
        }
    }

    fn poll_pressure(&mut self, now: SystemTime) {
        let Some(min_free) = self.config.disk.min_free else {
            return;
        };
        let mut seen = std::collections::HashSet::new();
        let mut fire = None;
        for p in self.watch_paths.clone() {
            let Ok(fs) = crate::disk::measure(&p) else {
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
                crate::units::human_bytes(free),
                crate::units::human_bytes(watermark)
            );
            self.start("pressure", false, None);
        }
    }

    /// Starts a run, or queues it behind the one in progress.
    fn start(&mut self, trigger: &str, dry_run: bool, waiter: Option<oneshot::Sender<Response>>) {
        if self.running.is_some() {
            match waiter {
                // A manual request waits for a run of its own; schedule and pressure fold into
                // the one in progress.
                Some(w) => self.queued.push((trigger.into(), dry_run, Some(w))),
                None => {
                    tracing::info!("{trigger} trigger while a run is in progress: folded into it")
                }
            }
            return;
        }
        let config = self.config.clone();
        let uses = Arc::clone(&self.uses);
        let cache = Arc::clone(&self.cache);
        let stop = Arc::new(AtomicBool::new(false));
        let tracked: Vec<PathBuf> = self
            .watch_paths
            .iter()
            .filter(|p| self.tracker.fully_tracked(p))
            .cloned()
            .collect();
        let (tx, rx) = oneshot::channel();
        let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
        tracing::info!(trigger, dry_run, "run starts");
        let job = Job {
            sides: BOTH,
            mode,
            stop: Some(Arc::clone(&stop)),
            progress: Arc::new(Progress::hidden()),
            cache: Some(cache),
            adjust: {
                let uses = Arc::clone(&uses);
                Box::new(move |s| apply_uses(s, &uses, &tracked, SystemTime::now()))
            },
            observer: Box::new(Recorded { uses }),
        };
        tokio::spawn(async move {
            let outcome = job::clean(&config, &config.cargo.roots, job).await;
            let _ = tx.send(outcome);
        });
        self.last_run = Some(SystemTime::now());
        self.running = Some(Running {
            trigger: trigger.into(),
            dry_run,
            started: SystemTime::now(),
            clock: Instant::now(),
            stop,
            waiters: waiter.into_iter().collect(),
            done: rx,
        });
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }

    async fn finish(&mut self, outcome: job::Outcome) {
        let Some(run) = self.running.take() else {
            return;
        };
        let stopped = run.stop.load(Ordering::SeqCst);
        let view = CleanView::from_outcome(&outcome);
        let record = record_of(&outcome, &run, stopped, &view);
        crate::cli::log_actions(&outcome);
        tracing::info!(
            trigger = run.trigger,
            reclaimed = record.reclaimed_bytes,
            duration_ms = record.duration_ms,
            "run done: reclaimed {}",
            crate::units::human_bytes(record.reclaimed_bytes)
        );
        for why in &record.blocked {
            tracing::info!(trigger = run.trigger, "why: {why}");
        }
        for e in &record.errors {
            self.remember_error(e.clone());
        }
        if let Err(e) = self.history.append(record.clone()) {
            self.remember_error(format!("cannot record the run in history: {e}"));
        }
        let response = Response {
            ok: true,
            error: None,
            json: to_json(&view),
            text: report::human::clean(&view),
        };
        for w in run.waiters {
            let _ = w.send(response.clone());
        }
        drop(outcome);
        if !stopped {
            self.rescan().await;
            if !self.queued.is_empty() {
                let (trigger, dry_run, waiter) = self.queued.remove(0);
                self.start(&trigger, dry_run, waiter);
            }
        }
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }

    /// The run's task ended without an outcome (a bug: its panic message is in the log).
    fn job_died(&mut self) {
        if let Some(run) = self.running.take() {
            self.remember_error(format!(
                "the {} run failed unexpectedly; see the log",
                run.trigger
            ));
            for w in run.waiters {
                let _ = w.send(Response::refused(
                    "the run failed unexpectedly; see the daemon's log",
                ));
            }
        }
        self.notifier.notify(&format!("STATUS={}", self.summary()));
    }

    async fn answer(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let response = match request {
            Request::Health => {
                let healthy = self.config_error.is_none();
                Response {
                    ok: healthy,
                    error: self.config_error.clone(),
                    json: serde_json::json!({ "healthy": healthy, "pid": std::process::id() }),
                    text: if healthy {
                        "healthy".into()
                    } else {
                        "unhealthy".into()
                    },
                }
            }
            Request::Status => {
                if self.view.is_none() {
                    self.rescan().await;
                }
                // The index was measured at its time; the daemon's own state is live.
                let info = self.info();
                match self.view.as_mut() {
                    Some(view) => {
                        view.daemon = Some(info);
                        Response {
                            ok: true,
                            error: None,
                            json: to_json(&*view),
                            text: report::human::status(view),
                        }
                    }
                    None => Response::refused("no measurement yet"),
                }
            }
            Request::History { limit } => {
                history_response(&self.history.last(limit), &self.history.totals())
            }
            Request::RunNow { dry_run } => {
                self.start("manual", dry_run, Some(reply));
                return;
            }
        };
        let _ = reply.send(response);
    }

    async fn stop(&mut self) {
        self.notifier.notify("STOPPING=1");
        tracing::info!("stopping");
        if let Some(run) = self.running.as_mut() {
            run.stop.store(true, Ordering::SeqCst);
            let deadline = self.config.daemon.stop_timeout;
            match tokio::time::timeout(deadline, &mut run.done).await {
                Ok(Ok(outcome)) => self.finish(outcome).await,
                _ => tracing::error!(
                    "the run did not stop within {}s (a request to the Docker engine may hang); leaving",
                    deadline.as_secs()
                ),
            }
        }
        self.save();
    }
}

fn record_of(outcome: &job::Outcome, run: &Running, stopped: bool, view: &CleanView) -> RunRecord {
    use crate::policy::Item;
    use crate::sweep::Status;
    let mut targets: Vec<state::TargetRun> = outcome
        .survey
        .targets
        .iter()
        .map(|t| state::TargetRun {
            path: t.path.clone(),
            ..state::TargetRun::default()
        })
        .collect();
    let mut errors = Vec::new();
    for r in &outcome.sweep.results {
        let a = &outcome.plan.actions[r.action];
        let t = &mut targets[a.target];
        t.reclaimed_bytes += r.reclaimed_bytes;
        if matches!(r.status, Status::Removed | Status::WouldRemove) {
            match a.item {
                Item::Unit(_) | Item::Orphan(_) => t.units_removed += 1,
                Item::Incremental(_) => t.incremental_removed += 1,
            }
        }
        if r.status == Status::Partial {
            errors.extend(r.errors.iter().cloned());
        }
    }
    targets.retain(|t| t.reclaimed_bytes > 0 || t.units_removed > 0 || t.incremental_removed > 0);
    for (p, e) in &outcome.survey.failed {
        errors.push(format!("{}: {e}", p.display()));
    }
    let bk = report::BuildkitView::build(
        &outcome.survey.buildkit,
        outcome.buildkit_plan.as_ref(),
        false,
    );
    if bk.state == "unavailable" {
        errors.push(format!("BuildKit: {}", bk.message.unwrap_or_default()));
    }
    if let Some(s) = &outcome.buildkit_sweep {
        errors.extend(s.results.iter().filter_map(|r| r.error.clone()));
    }
    let buildkit_records_removed = outcome.buildkit_sweep.as_ref().map_or(0, |s| {
        s.results
            .iter()
            .filter(|r| matches!(r.status, Status::Removed | Status::WouldRemove))
            .count() as u64
    });
    RunRecord {
        trigger: run.trigger.clone(),
        dry_run: run.dry_run,
        started: rfc3339(run.started),
        started_unix: run
            .started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_ms: u64::try_from(run.clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        reclaimed_bytes: outcome.reclaimed_bytes(),
        cargo_reclaimed_bytes: outcome.sweep.reclaimed_bytes,
        buildkit_reclaimed_bytes: outcome
            .buildkit_sweep
            .as_ref()
            .map_or(0, |s| s.reclaimed_bytes),
        targets,
        buildkit_state: bk.state.to_string(),
        buildkit_records_removed,
        errors,
        stopped,
        blocked: view
            .blocked
            .iter()
            .cloned()
            .chain(
                view.buildkit
                    .blocked
                    .iter()
                    .map(|b| format!("BuildKit: {b}")),
            )
            .collect(),
    }
}

/// A view as JSON. Views cannot fail to serialize (paths go through `pathcodec`); if one ever
/// did, the answer says so rather than being `null`.
fn to_json<T: serde::Serialize>(view: &T) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or_else(|e| {
        serde_json::json!({
            "version": report::SCHEMA_VERSION,
            "error": { "message": format!("cannot write the answer as JSON: {e}"), "exit_code": 1 },
        })
    })
}

#[must_use]
pub fn history_response(runs: &[RunRecord], totals: &state::Totals) -> Response {
    Response {
        ok: true,
        error: None,
        json: serde_json::json!({ "version": report::SCHEMA_VERSION, "runs": runs, "totals": totals }),
        text: report::human::history(runs, totals),
    }
}
