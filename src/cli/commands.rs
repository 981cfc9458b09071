//! The commands that measure, clean, or ask the daemon: `scan`, `status`, `clean`, `daemon`,
//! `run-now`, `history`, `healthcheck`, `doctor`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Cli, Command, Context, emit_json, fail, no_daemon, show};
use crate::protocol::{Request, Response, ask};
use crate::report::{
    self, CleanView, ConfigOnDisk, Exit, HealthView, HistoryView, SurveyView, UsesView, human,
};
use crate::run::survey::{self, Records, Survey};
use cachekeeper_core::model::{ActionResult, CargoAction, Mode, Sides, TargetDir};
use cachekeeper_sys::act::sweep::Observer;
use cachekeeper_sys::configfile::LoadError;
use cachekeeper_sys::progress::Progress;

/// How long the CLI waits for the daemon's answer to anything but a run.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// `scan` (and `status` with no daemon): measure, decide, show.
pub fn scan(ctx: &Context<'_>, paths: &[PathBuf], sides: Sides) -> Exit {
    survey(ctx, paths, sides, true, human::scan)
}

fn survey(
    ctx: &Context<'_>,
    paths: &[PathBuf],
    sides: Sides,
    every_unit: bool,
    render: fn(&SurveyView, human::Style) -> String,
) -> Exit {
    let roots = match ctx.roots(paths) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let records = daemon_records(ctx);
    let daemon = records.is_some();
    let Survey {
        snapshot, mut view, ..
    } = ctx.rt.block_on(survey::survey(
        ctx.config,
        &roots,
        sides,
        ctx.progress,
        None,
        None,
        move |_, _| Records {
            watched: records.as_ref().map(UsesView::watched).unwrap_or_default(),
            uses: records.map(|r| r.uses),
        },
    ));
    if every_unit {
        view.with_every_unit(&snapshot);
    } else if !daemon {
        // No daemon keeps the history: show what this user's runs recorded.
        view.history = past_runs(ctx);
    }
    show(ctx.cli, &view, render);
    view.exit()
}

/// What the daemon recorded of builds' uses, when one answers: the CLI then plans on the
/// same input as the daemon, so a dry run here shows what the daemon's run would do.
fn daemon_records(ctx: &Context<'_>) -> Option<UsesView> {
    match ask(&ctx.socket(), &Request::Uses, Some(ANSWER_WITHIN)) {
        Ok(Response::Uses(view)) => Some(*view),
        _ => None,
    }
}

/// The state dir's history, when there is one (read only: nothing is created).
fn past_runs(ctx: &Context<'_>) -> Option<report::PastRuns> {
    let dir = crate::protocol::state_dir(ctx.config.daemon.state_dir.as_deref());
    if !dir.is_dir() {
        return None;
    }
    let state = crate::daemon::state::StateDir::open(&dir).ok()?;
    let history = state.history(false);
    Some(report::PastRuns {
        totals: history.totals(),
        last_runs: history.last(10),
        state_dir: dir,
    })
}

/// Where `clean`'s run is recorded: see [`keep_record`]. Dry runs are questions, not runs:
/// they are not recorded.
fn record_run(
    ctx: &Context<'_>,
    outcome: &cachekeeper_core::model::Outcome,
    view: &CleanView,
    facts: &report::RunFacts,
) {
    if view.dry_run {
        return;
    }
    keep_record(
        ctx,
        report::record_of(outcome, view, facts),
        report::RunErrors::of(view),
    );
}

/// Records a run made here: in the daemon's history when one answers, else in this user's
/// state dir (and the metrics textfile, when configured). A run that cannot be recorded is
/// said, never fatal.
pub(super) fn keep_record(
    ctx: &Context<'_>,
    run: cachekeeper_core::model::RunRecord,
    errors: report::RunErrors,
) {
    let request = Request::Record(Box::new(report::RecordView {
        run: run.clone(),
        errors,
    }));
    match ask(&ctx.socket(), &request, Some(ANSWER_WITHIN)) {
        Ok(Response::Recorded) => return,
        Ok(Response::Refused(why)) => {
            eprintln!("note: the daemon did not record this run ({why}); recording it here");
        }
        _ => {}
    }
    let dir = crate::protocol::state_dir(ctx.config.daemon.state_dir.as_deref());
    let recorded = crate::daemon::state::StateDir::open(&dir).and_then(|state| {
        let mut history = state.history(false);
        state.append(&mut history, run)?;
        Ok(history)
    });
    match recorded {
        Ok(history) => {
            if let Err(e) = write_textfile(ctx, &history, errors) {
                eprintln!("warning: {e}");
            }
        }
        Err(e) => eprintln!(
            "warning: this run is not in the history: cannot write to {}: {e}",
            dir.display()
        ),
    }
}

/// The metrics textfile after a run without a daemon: counters from the whole history, the
/// gauges from a measurement after the run.
fn write_textfile(
    ctx: &Context<'_>,
    history: &crate::daemon::state::History,
    errors: report::RunErrors,
) -> Result<(), String> {
    let Some(path) = &ctx.config.metrics.textfile else {
        return Ok(());
    };
    let status = ctx
        .rt
        .block_on(survey::survey(
            ctx.config,
            &ctx.config.cargo.roots,
            Sides::BOTH,
            &Arc::new(Progress::hidden()),
            None,
            None,
            |_, _| Records::default(),
        ))
        .view;
    let text = crate::metrics::textfile(
        &history.last(usize::MAX),
        errors,
        status,
        &ctx.config.metrics,
    );
    cachekeeper_sys::os::private::replace_file(path, text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write the metrics textfile {}: {e}", path.display()))
}

/// `status`: the daemon's index when one answers, else measured here.
pub fn status(ctx: &Context<'_>, refresh: bool) -> Exit {
    let path = ctx.socket();
    match ask(&path, &Request::Status { refresh }, Some(ANSWER_WITHIN)) {
        Ok(Response::Status(view)) => {
            show(ctx.cli, &*view, human::status);
            return view.exit();
        }
        Ok(other) => eprintln!(
            "note: the daemon at {} did not answer ({}); measuring directly",
            path.display(),
            refusal(&other)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => eprintln!(
            "note: the daemon at {} answers only its own user and root ({e}); measuring directly",
            path.display()
        ),
        Err(e) => eprintln!("note: {}; measuring directly", no_daemon(&path, &e)),
    }
    survey(ctx, &[], Sides::BOTH, false, human::status)
}

/// Why an answer is not the one asked for.
fn refusal(r: &Response) -> String {
    match r {
        Response::Refused(why) => why.clone(),
        _ => "an answer to another question".to_string(),
    }
}

pub fn daemon(ctx: &Context<'_>) -> Exit {
    // The config was validated above; the daemon loads (and reloads) it itself.
    let options = crate::daemon::Options {
        config_path: ctx.cli.config.clone(),
        env: cachekeeper_sys::configfile::process_env(),
    };
    match crate::daemon::run(options, ctx.rt) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            tracing::error!("{e:#}");
            fail(ctx.cli, Exit::Failure, &format!("{e:#}"))
        }
    }
}

/// `run-now`: the daemon runs; this waits and shows what it did.
pub fn run_now(ctx: &Context<'_>, dry_run: bool) -> Exit {
    let path = ctx.socket();
    match ask(&path, &Request::RunNow { dry_run }, None) {
        Ok(answer) => show_run(ctx.cli, answer),
        Err(e) => fail(
            ctx.cli,
            Exit::Failure,
            &format!(
                "{}; start it (`cachekeeper daemon`, or the systemd unit) or use `cachekeeper clean`",
                no_daemon(&path, &e)
            ),
        ),
    }
}

fn show_run(cli: &Cli, answer: Response) -> Exit {
    match answer {
        Response::Run(view) => {
            show(cli, &*view, human::clean);
            view.exit()
        }
        other => fail(
            cli,
            Exit::Failure,
            &format!("the daemon refused: {}", refusal(&other)),
        ),
    }
}

/// `history`: from the daemon, else read from its state dir.
pub fn history(ctx: &Context<'_>, limit: usize) -> Exit {
    let view = match ask(
        &ctx.socket(),
        &Request::History { limit },
        Some(ANSWER_WITHIN),
    ) {
        Ok(Response::History(view)) => view,
        _ => {
            let dir = crate::protocol::state_dir(ctx.config.daemon.state_dir.as_deref());
            match crate::daemon::state::StateDir::open(&dir) {
                Ok(state) => {
                    let history = state.history(false);
                    HistoryView::new(history.last(limit), history.totals())
                }
                Err(e) => {
                    let msg = format!("cannot read the state dir {}: {e}", dir.display());
                    return fail(ctx.cli, Exit::Failure, &msg);
                }
            }
        }
    };
    show(ctx.cli, &view, human::history);
    Exit::Ok
}

/// `doctor`: look at the builds under the roots and at this machine; change nothing.
pub fn doctor(ctx: &Context<'_>, paths: &[PathBuf], config_trouble: Option<String>) -> Exit {
    let roots = match ctx.roots(paths) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let view = ctx.rt.block_on(crate::doctor::doctor(
        ctx.config,
        &roots,
        config_trouble,
        ctx.progress,
    ));
    show(ctx.cli, &view, human::doctor);
    view.exit()
}

pub fn healthcheck(ctx: &Context<'_>) -> Exit {
    let path = ctx.socket();
    let view = match ask(&path, &Request::Health, Some(Duration::from_secs(10))) {
        Ok(Response::Health(view)) => view,
        Ok(other) => unhealthy(None, refusal(&other)),
        Err(e) => unhealthy(None, no_daemon(&path, &e)),
    };
    show_health(ctx.cli, &view)
}

/// `init-state --owner UID:GID`: the state dir in force, made and given to that user.
pub fn init_state(ctx: &Context<'_>, owner: &str) -> Exit {
    let parsed = owner
        .split_once(':')
        .and_then(|(u, g)| Some((u.parse::<u32>().ok()?, g.parse::<u32>().ok()?)));
    let Some((uid, gid)) = parsed else {
        return fail(
            ctx.cli,
            Exit::Usage,
            &format!("--owner {owner:?}: give a numeric uid and gid, as in 1001:1001"),
        );
    };
    let dir = crate::protocol::state_dir(ctx.config.daemon.state_dir.as_deref());
    match cachekeeper_sys::os::private::hand_over(&dir, uid, gid) {
        Ok(()) => {
            if !ctx.cli.quiet {
                eprintln!("{}: the state dir, uid {uid}'s (mode 0700)", dir.display());
            }
            Exit::Ok
        }
        Err(e) => fail(
            ctx.cli,
            Exit::Failure,
            &format!("cannot make {} uid {uid}'s: {e}", dir.display()),
        ),
    }
}

fn unhealthy(pid: Option<u32>, why: String) -> HealthView {
    HealthView::unhealthy(pid, &why)
}

/// `healthy`, or why not on stderr; under `--json` the view either way.
fn show_health(cli: &Cli, view: &HealthView) -> Exit {
    if view.healthy {
        show(cli, view, |v, _| match &v.activity {
            Some(a) => format!("healthy ({a})\n"),
            None => "healthy\n".to_string(),
        });
    } else {
        let why = view
            .error
            .as_ref()
            .map_or("unknown", |e| e.message.as_str());
        eprintln!("unhealthy: {why}");
        if cli.json {
            emit_json(view);
        }
    }
    view.exit()
}

/// Shows clean's progress: bytes freed of the plan, with rate and ETA.
struct CleanProgress {
    progress: Arc<Progress>,
    done: usize,
    of: usize,
}

impl Observer for CleanProgress {
    fn start(&mut self, actions: usize, bytes: u64) {
        self.of = actions;
        if actions > 0 {
            self.progress.cleaning(actions, bytes);
        }
    }

    fn after(&mut self, target: &TargetDir, action: &CargoAction, result: &ActionResult) {
        self.done += 1;
        let bytes = result.reclaimed_bytes.max(match result.status {
            // A dry run frees nothing but walks the plan all the same.
            cachekeeper_core::model::Status::WouldRemove => action.bytes,
            _ => 0,
        });
        self.progress
            .cleaned(self.done, self.of, bytes, &target.path);
    }
}

pub fn clean(ctx: &Context<'_>, paths: &[PathBuf], sides: Sides, dry_run: bool) -> Exit {
    let roots = match ctx.roots(paths) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mode = if dry_run { Mode::DryRun } else { Mode::Execute };
    let mut job = crate::run::Job::new(sides, mode, Arc::clone(ctx.progress));
    job.observer = Box::new(CleanProgress {
        progress: Arc::clone(ctx.progress),
        done: 0,
        of: 0,
    });
    // Beside a daemon, the same input as its own runs: what it recorded of builds' uses.
    if let Some(records) = daemon_records(ctx) {
        job.watched = records.watched();
        let uses = Arc::new(std::sync::Mutex::new(records.uses));
        job.live = Some(Arc::clone(&uses) as Arc<dyn cachekeeper_core::model::RecordedUses>);
        job.uses = Some(uses);
    }
    let started = SystemTime::now();
    let clock = std::time::Instant::now();
    let outcome = ctx.rt.block_on(crate::run::clean(ctx.config, &roots, job));
    ctx.progress.done();
    report::journal::log_actions(&outcome);
    let view = CleanView::from_outcome(&outcome);
    let origin = match std::env::var("CACHEKEEPER_ORIGIN").as_deref() {
        Ok("timer") => "timer",
        _ => "cli",
    };
    record_run(
        ctx,
        &outcome,
        &view,
        &report::RunFacts {
            trigger: origin.into(),
            origin: origin.into(),
            dry_run,
            started,
            duration: clock.elapsed(),
            stopped: false,
        },
    );
    show(ctx.cli, &view, human::clean);
    view.exit()
}

/// `status`, `healthcheck`, `history` and `run-now` with a config that does not validate: the
/// daemon's answer, with the error of the file on disk. `None` when no daemon answers (or the
/// command needs the config itself).
pub fn ask_despite_config(cli: &Cli, socket: &Path, error: &LoadError) -> Option<Exit> {
    let request = match &cli.command {
        Command::Status { refresh } => Request::Status { refresh: *refresh },
        Command::Healthcheck => Request::Health,
        Command::History { limit } => Request::History { limit: *limit },
        Command::RunNow { dry_run } => Request::RunNow { dry_run: *dry_run },
        _ => return None,
    };
    let wait = (!matches!(request, Request::RunNow { .. })).then_some(ANSWER_WITHIN);
    let answer = ask(socket, &request, wait).ok()?;
    if let Response::Health(view) = &answer {
        // A daemon answers, but the file its next start (or reload) reads does not validate:
        // unhealthy, whatever it says of itself.
        let why = format!("the config on disk does not validate: {error}");
        return Some(show_health(cli, &unhealthy(view.pid, why)));
    }
    eprintln!(
        "warning: the config on disk does not validate; the daemon at {} answers with the config it loaded:\n{error}",
        socket.display()
    );
    let on_disk = ConfigOnDisk {
        valid: false,
        error: error.to_string(),
    };
    Some(match answer {
        Response::Status(mut view) => {
            view.config_on_disk = Some(on_disk);
            show(cli, &*view, human::status);
            view.exit()
        }
        Response::History(mut view) => {
            view.config_on_disk = Some(on_disk);
            show(cli, &view, human::history);
            Exit::Ok
        }
        Response::Run(mut view) => {
            view.config_on_disk = Some(on_disk);
            show_run(cli, Response::Run(view))
        }
        other => fail(
            cli,
            Exit::Failure,
            &format!("the daemon refused: {}", refusal(&other)),
        ),
    })
}
