//! What the daemon knows between runs: its last measurement (the status view), which target
//! dirs it watches whole, where to look for disk pressure, and its own state for `status`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::{Daemon, lock};
use crate::measure;
use crate::model::{BuildkitSide, Sides};
use crate::progress::Progress;
use crate::report::{DaemonInfo, Source, SurveyView, Trigger};
use crate::units::rfc3339;

impl Daemon {
    /// Measures everything again (no cleaning): the status view, watches, pressure paths.
    pub(super) async fn rescan(&mut self) {
        if self.running.is_some() {
            return;
        }
        self.cache.begin();
        let (snapshot, _) = measure::measure(
            &self.config,
            &self.config.cargo.roots,
            Sides::BOTH,
            Arc::new(Progress::hidden()),
            Some(Arc::clone(&self.cache)),
        )
        .await;
        self.cache.end();
        let now = SystemTime::now();
        self.tracker.sync(&snapshot.targets, now);
        self.tracker.flush();
        self.watched = snapshot
            .targets
            .iter()
            .filter_map(|t| Some((t.path.clone(), self.tracker.watched_since(&t.path)?)))
            .collect();
        self.watch_paths = snapshot.targets.iter().map(|t| t.path.clone()).collect();
        self.watch_paths.extend(
            self.config
                .cargo
                .roots
                .iter()
                .filter(|r| r.exists())
                .cloned(),
        );
        if let BuildkitSide::Ready(cache) = &snapshot.buildkit
            && let Some(root) = cache.root_dir().filter(|r| r.exists())
        {
            self.watch_paths.push(root.clone());
        }
        let uses = lock(&self.uses).clone();
        let (plan, bk_plan) =
            crate::run::decide(&self.config, &snapshot, Some(&uses), &self.watched, now);
        let mut view = SurveyView::of(&self.config, &snapshot, &plan, bk_plan.as_ref());
        self.measured_at = Some(now);
        view.source = Source::Daemon;
        self.view = Some(view);
        self.next_rescan = Instant::now() + self.config.daemon.rescan_interval;
        self.save();
        self.publish_metrics(true);
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
            started: rfc3339(self.started),
            measured_at: self.measured_at.map(rfc3339),
            measured_seconds_ago: self.measured_at.map(|t| {
                SystemTime::now()
                    .duration_since(t)
                    .map_or(0, |d| d.as_secs())
            }),
            config_error: self.config_error.clone(),
            state_dir: self.state.path().to_path_buf(),
            socket: self.socket.clone(),
            schedule: self.config.daemon.schedule.text().to_string(),
            next_run: self.next_run.map(rfc3339),
            running: self
                .running
                .as_ref()
                .map(|r| format!("{} since {}", r.trigger, rfc3339(r.started))),
            pressure_armed: self.config.disk.min_free.is_some() && armed,
            pressure: match self.config.disk.min_free {
                None => Trigger::Off,
                Some(_) if armed => Trigger::Armed,
                Some(_) => Trigger::Disarmed,
            },
            tracking: self.tracker.stats(),
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
