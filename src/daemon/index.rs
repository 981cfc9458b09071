//! What the daemon knows between runs: its last measurement (the status view), which target
//! dirs it watches whole, where to look for disk pressure, and its own state for `status`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use super::{Daemon, lock};
use crate::protocol::Response;
use crate::report::{DaemonInfo, RunningView, Source, SurveyView, Trigger};
use crate::run::survey::{self, Records};
use cachekeeper_core::model::{BuildkitSide, Sides};
use cachekeeper_sys::progress::Progress;

/// A measurement of everything, made away from the daemon's loop (a rescan of a large tree
/// takes seconds: the socket, health and metrics answer meanwhile).
pub(super) struct Measured {
    view: SurveyView,
    watched: cachekeeper_core::model::Watched,
    watch_paths: Vec<PathBuf>,
    at: SystemTime,
}

/// A rescan in progress, and who waits for its view (`status --refresh`).
pub(super) struct Rescanning {
    done: oneshot::Receiver<Measured>,
    pub(super) waiters: Vec<oneshot::Sender<Response>>,
}

impl Rescanning {
    pub(super) async fn done(&mut self) -> Option<Measured> {
        (&mut self.done).await.ok()
    }
}

/// Measures, watches what it found, and plans: all off the daemon's loop.
async fn measure(
    config: cachekeeper_core::config::Config,
    cache: Arc<cachekeeper_sys::measure::inventory::FingerprintCache>,
    tracker: Arc<Mutex<super::tracker::Tracker>>,
    uses: Arc<Mutex<cachekeeper_core::model::LastUse>>,
) -> Option<Measured> {
    let survey = survey::survey(
        &config,
        &config.cargo.roots,
        Sides::BOTH,
        &Arc::new(Progress::hidden()),
        Some(&cache),
        move |snapshot, now| {
            let mut t = lock(&tracker);
            t.sync(&snapshot.targets, now);
            t.flush();
            let watched = snapshot
                .targets
                .iter()
                .filter_map(|d| Some((d.path.clone(), t.watched_since(&d.path)?)))
                .collect();
            Records {
                uses: Some(lock(&uses).clone()),
                watched,
            }
        },
    )
    .await;
    let snapshot = &survey.snapshot;
    let mut watch_paths: Vec<PathBuf> = snapshot.targets.iter().map(|t| t.path.clone()).collect();
    watch_paths.extend(config.cargo.roots.iter().filter(|r| r.exists()).cloned());
    if let BuildkitSide::Ready(cache) = &snapshot.buildkit
        && let Some(root) = cache.root_dir().filter(|r| r.exists())
    {
        watch_paths.push(root.clone());
    }
    let mut view = survey.view;
    view.source = Source::Daemon;
    Some(Measured {
        view,
        watched: survey.watched,
        watch_paths,
        at: survey.at,
    })
}

impl Daemon {
    /// Starts measuring everything again (no cleaning) in the background, unless that is under
    /// way; `waiter` gets the status view once it is done.
    pub(super) fn rescan(&mut self, waiter: Option<oneshot::Sender<Response>>) {
        if let Some(r) = self.rescanning.as_mut() {
            r.waiters.extend(waiter);
            return;
        }
        let (tx, rx) = oneshot::channel();
        let job = measure(
            self.config.clone(),
            Arc::clone(&self.cache),
            Arc::clone(&self.tracker),
            Arc::clone(&self.uses),
        );
        tokio::spawn(async move {
            if let Some(m) = job.await {
                let _ = tx.send(m);
            }
        });
        self.rescanning = Some(Rescanning {
            done: rx,
            waiters: waiter.into_iter().collect(),
        });
    }

    /// Measures everything now, waiting for it (at start-up, before READY).
    pub(super) async fn rescan_now(&mut self) {
        self.rescan(None);
        if let Some(mut r) = self.rescanning.take() {
            match r.done().await {
                Some(m) => self.measured(m, r.waiters),
                None => self.rescan_failed(r.waiters),
            }
        }
    }

    /// A rescan is done: its view becomes the index.
    pub(super) fn measured(&mut self, m: Measured, waiters: Vec<oneshot::Sender<Response>>) {
        self.watched = m.watched;
        self.watch_paths = m.watch_paths;
        self.measured_at = Some(m.at);
        self.view = Some(m.view);
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        self.save();
        self.publish_metrics(true);
        for w in waiters {
            let _ = w.send(self.status_response());
        }
    }

    pub(super) fn rescan_failed(&mut self, waiters: Vec<oneshot::Sender<Response>>) {
        self.remember_error("a rescan failed unexpectedly; see the log".into());
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        for w in waiters {
            let _ = w.send(self.status_response());
        }
    }

    /// The status view with the daemon's own state, live.
    pub(super) fn status_response(&mut self) -> Response {
        self.state.refresh(&mut self.history);
        let info = self.info();
        match self.view.as_mut() {
            Some(view) => {
                view.daemon = Some(info);
                Response::Status(Box::new(view.clone()))
            }
            None => Response::refused("no measurement yet"),
        }
    }

    /// Refreshes what metrics scrapes read (the last measurement, the daemon's own state);
    /// `textfile`: and writes the textfile.
    pub(super) fn publish_metrics(&mut self, textfile: bool) {
        let mut view = self.view.clone();
        if let Some(v) = view.as_mut() {
            v.daemon = Some(self.info());
        }
        self.exporter.publish(view);
        if textfile && let Err(e) = self.exporter.write_textfile() {
            self.remember_error(e);
        }
    }

    /// The daemon's own state, live.
    pub(super) fn info(&self) -> DaemonInfo {
        let armed = self.pressure.values().all(super::Pressure::armed);
        DaemonInfo {
            pid: std::process::id(),
            started: self.started,
            measured_at: self.measured_at,
            measured_seconds_ago: self.measured_at.map(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .map_or(0, |d| d.as_secs())
            }),
            config_error: self.config_error.clone(),
            state_dir: self.state.path().to_path_buf(),
            degraded: self.state.problem().map(str::to_string),
            socket: self.socket.clone(),
            schedule: self.config.daemon.schedule.text().to_string(),
            schedule_delay_seconds: super::host_share(self.config.daemon.schedule_jitter).as_secs(),
            next_run: self.next_run,
            running: self.running.as_ref().map(|r| RunningView {
                trigger: r.trigger.to_string(),
                since: r.started,
            }),
            pressure_armed: self.config.disk.min_free.is_some() && armed,
            pressure: match self.config.disk.min_free {
                None => Trigger::Off,
                Some(_) if armed => Trigger::Armed,
                Some(_) => Trigger::Disarmed,
            },
            tracking: lock(&self.tracker).stats(),
            rescanning: self.rescanning.is_some(),
            metrics: self
                .exporter
                .address()
                .map(|a| format!("http://{a}/metrics")),
            totals: self.history.totals(),
            last_runs: self.history.last(10),
            errors: self.errors.clone(),
        }
    }
}
