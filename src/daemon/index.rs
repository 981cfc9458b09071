//! What the daemon knows between runs: its last measurement (the status view), which target
//! dirs it watches whole, where to look for disk pressure, and its own state for `status`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;

use super::walks::{Changed, Changes, Kind, Pending};
use super::{Daemon, lock};
use crate::protocol::Response;
use crate::report::{DaemonInfo, IndexView, RunningView, Source, SurveyView, Trigger};
use crate::run::survey::{self, Records};
use cachekeeper_core::model::{BuildkitSide, Packed, Sides};
use cachekeeper_sys::measure::Reuse;
use cachekeeper_sys::progress::Progress;

/// How long after a change the index waits for more before it refreshes (a build's writes
/// come in bursts; a refresh waits for the build's lock to be let go anyway).
pub(super) const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Units a refresh looks at before the watches are made again in fresh memory (see
/// [`Daemon::measured`]), as after every full walk: a target dir walked whole. Below, what it
/// allocated is little, and the move would cost a build's refresh more than it gives back.
const REHOME_AFTER: usize = 1000;

/// A measurement of everything, made away from the daemon's loop (a rescan of a large tree
/// takes seconds: the socket, health and metrics answer meanwhile).
pub(super) struct Measured {
    view: SurveyView,
    /// Packed for the index to hold.
    targets: Vec<Packed>,
    watched: cachekeeper_core::model::Watched,
    watch_paths: Vec<PathBuf>,
    at: SystemTime,
}

/// A refresh in progress, what it takes as it was, and who waits for its view
/// (`status --refresh`).
pub(super) struct Rescanning {
    done: oneshot::Receiver<Measured>,
    pending: Pending,
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
    reuse: Option<Reuse<Packed>>,
) -> Option<Measured> {
    let reuse = match reuse {
        Some(r) => {
            let (reuse, failed) = tokio::task::spawn_blocking(move || r.unpack()).await.ok()?;
            for path in failed {
                tracing::warn!(target_dir = %path.display(), "the index's record of this target dir does not read back; walking it again");
            }
            Some(reuse)
        }
        None => None,
    };
    let survey = survey::survey(
        &config,
        &config.cargo.roots,
        Sides::BOTH,
        &Arc::new(Progress::hidden()),
        Some(&cache),
        reuse,
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
    let targets = survey.snapshot.targets;
    let targets = tokio::task::spawn_blocking(move || targets.iter().map(Packed::pack).collect())
        .await
        .ok()?;
    Some(Measured {
        view,
        targets,
        watched: survey.watched,
        watch_paths,
        at: survey.at,
    })
}

impl Daemon {
    /// Refreshes the index in the background (no cleaning), unless a refresh is under way:
    /// `kind` says how much is walked (`None`: what the intervals and the watches call for, see
    /// [`super::walks`]). `waiter` gets the status view once it is done.
    pub(super) fn refresh(
        &mut self,
        kind: Option<Kind>,
        waiter: Option<oneshot::Sender<Response>>,
    ) {
        if let Some(r) = self.rescanning.as_mut() {
            // A full walk asked for now follows the refresh under way, and its waiter waits
            // for it (`status --refresh` means numbers walked after it asked).
            if let Some(Kind::Full(why)) = kind {
                self.full_pending = Some(why);
                self.full_waiters.extend(waiter);
            } else {
                r.waiters.extend(waiter);
            }
            return;
        }
        let now = SystemTime::now();
        let (mut dirs, lost, watching) = match lock(&self.tracker).take_changes() {
            Some((dirs, lost)) => (dirs, lost, true),
            None => (std::collections::HashMap::new(), false, false),
        };
        // A run of ours removes incremental dirs, which are not watched.
        dirs.extend(self.acted.drain().map(|d| (d, Changed::Whole)));
        let periodic = || {
            self.index
                .periodic(now, self.config.daemon.full_rescan_interval, lost, watching)
        };
        let kind = match kind.or_else(|| self.full_pending.take().map(Kind::Full)) {
            Some(Kind::Full(why)) => Kind::Full(why),
            Some(_) | None if lost => Kind::Full("overflow"),
            Some(Kind::Events) if !watching => return,
            Some(Kind::Events) if dirs.is_empty() => return,
            Some(k) => k,
            None => periodic(),
        };
        let partial = {
            let t = lock(&self.tracker);
            if matches!(kind, Kind::Full(_)) {
                // Every unit is measured again, and those watched now are watched during it.
                t.walking_everything();
            }
            t.partial().clone()
        };
        let (reuse, pending) = self.index.plan(kind, Changes { dirs, partial });
        let (tx, rx) = oneshot::channel();
        let job = measure(
            self.config.clone(),
            Arc::clone(&self.cache),
            Arc::clone(&self.tracker),
            Arc::clone(&self.uses),
            reuse,
        );
        tokio::spawn(async move {
            if let Some(m) = job.await {
                let _ = tx.send(m);
            }
        });
        self.rescanning = Some(Rescanning {
            done: rx,
            pending,
            waiters: waiter.into_iter().collect(),
        });
    }

    /// Measures everything now, waiting for it (at start-up, before READY).
    pub(super) async fn rescan_now(&mut self) {
        self.refresh(None, None);
        if let Some(mut r) = self.rescanning.take() {
            match r.done().await {
                Some(m) => self.measured(m, r),
                None => self.rescan_failed(r),
            }
        }
    }

    /// Target dirs changed (a build wrote, a unit went): refresh what changed once no build
    /// holds a lock and nothing else measures or runs; until then, ask again shortly.
    pub(super) fn refresh_on_events(&mut self) {
        if lock(&self.tracker).building() || self.running.is_some() || self.rescanning.is_some() {
            self.refresh_at = Some(Instant::now() + SETTLE);
            return;
        }
        self.refresh_at = None;
        self.refresh(Some(Kind::Events), None);
    }

    /// A refresh is done: its view becomes the index.
    pub(super) fn measured(&mut self, m: Measured, r: Rescanning) {
        let searched = r.pending.searches();
        let walked = self.index.took(r.pending, m.targets, m.at);
        for (path, why) in &walked {
            tracing::debug!(target_dir = %path.display(), reason = why, "walked");
        }
        let (n, kept) = self.index.last();
        // Walked for another reason than a change: everything, at start, on a timer, after
        // lost events.
        let full = walked
            .iter()
            .any(|(_, why)| !matches!(*why, "changed" | "new-target-dir"));
        if full {
            tracing::info!(walked = n, kept, reason = walked[0].1, "index refreshed");
        } else {
            tracing::debug!(walked = n, kept, "index refreshed");
        }
        self.watched = m.watched;
        self.watch_paths = m.watch_paths;
        self.measured_at = Some(m.at);
        let mut view = m.view;
        // Roots that are not there, dirs the search could not enter, target dirs that could not
        // be scanned: an events refresh searched nothing, so the last search's findings stand.
        if !searched && let Some(old) = &self.view {
            view.missing_roots.clone_from(&old.missing_roots);
            view.search_errors.clone_from(&old.search_errors);
            view.failed.clone_from(&old.failed);
        }
        for t in &mut view.targets {
            t.walked_at = self.index.walked_at(&t.path);
        }
        self.view = Some(view);
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        self.save();
        self.publish_metrics(true);
        // The walk's buffers and the old index are freed by now; give them back.
        cachekeeper_sys::os::memory::release_free();
        if full || self.index.last_units().0 >= REHOME_AFTER {
            // The watches were made while the walk's buffers were alive: made again now, their
            // map and their paths' table lie side by side, without the paths of units gone.
            // (Moving the last-use record or the view as well gave nothing back, measured:
            // they are a few large buffers, and small allocations are not gathered by a move.)
            lock(&self.tracker).rehome();
            cachekeeper_sys::os::memory::release_free();
        }
        for w in r.waiters {
            let _ = w.send(self.status_response());
        }
        if self.full_pending.is_some() && !self.full_waiters.is_empty() {
            let waiters = std::mem::take(&mut self.full_waiters);
            self.refresh(None, None);
            if let Some(r) = self.rescanning.as_mut() {
                r.waiters.extend(waiters);
            }
        }
    }

    pub(super) fn rescan_failed(&mut self, r: Rescanning) {
        self.remember_error("a rescan failed unexpectedly; see the log".into());
        // What changed was taken for it: nothing can be taken as unchanged now.
        self.full_pending = Some("retry");
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        let full = std::mem::take(&mut self.full_waiters);
        for w in r.waiters.into_iter().chain(full) {
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
            index: IndexView {
                last_full_walk: self.index.last_full(),
                walks: self.index.walks(),
                walked_last: self.index.last().0,
                kept_last: self.index.last().1,
                units_walked_last: self.index.last_units().0,
                units_kept_last: self.index.last_units().1,
            },
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
