//! `guard`: keep a CI runner above a free-space floor, once or while a command runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{Context, emit, emit_json, fail};
use crate::guard::{self, step_summary};
use crate::report::human::guard::{pass as describe, watch as describe_watch};
use crate::report::{self, Exit};
use cachekeeper_core::config::value::parse_size;
use cachekeeper_core::units::parse_duration;

pub fn guard(
    ctx: &Context<'_>,
    min_free: &str,
    dry_run: bool,
    interval: &str,
    paths: &[PathBuf],
    command: &[OsString],
) -> ExitCode {
    let cli = ctx.cli;
    let floor = match parse_size(min_free) {
        Ok(f) => f,
        Err(e) => return fail(cli, Exit::Usage, &format!("--min-free: {e}")).into(),
    };
    let interval = match parse_duration(interval) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => return fail(cli, Exit::Usage, "--interval must be longer than zero").into(),
        Err(e) => return fail(cli, Exit::Usage, &format!("--interval: {e}")).into(),
    };
    let roots = match ctx.roots(paths) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    if command.is_empty() {
        let started = std::time::SystemTime::now();
        let clock = std::time::Instant::now();
        let mode = if dry_run {
            cachekeeper_core::model::Mode::DryRun
        } else {
            cachekeeper_core::model::Mode::Execute
        };
        let pass = ctx.rt.block_on(crate::run::guard::pass(
            ctx.config,
            &roots,
            floor,
            std::sync::Arc::clone(ctx.progress),
            mode,
            &|| false,
        ));
        ctx.progress.done();
        if !dry_run {
            record(ctx, &pass, started, clock.elapsed());
        }
        if cli.json {
            emit_json(&serde_json::json!({ "version": report::SCHEMA_VERSION, "pass": pass }));
        } else {
            emit(&describe(&pass));
            emit(match (pass.holds, dry_run) {
                (true, false) => "The floor holds.\n",
                (true, true) => "The floor would hold.\n",
                (false, _) => "The floor cannot be reached.\n",
            });
        }
        step_summary(std::slice::from_ref(&pass), None);
        let exit = if pass.holds {
            Exit::Ok
        } else {
            Exit::FloorNotReached
        };
        return exit.into();
    }
    let watched = ctx
        .rt
        .block_on(guard::watch(ctx.config, &roots, floor, interval, command));
    match watched {
        Ok(w) => {
            for pass in &w.passes {
                record(
                    ctx,
                    pass,
                    std::time::SystemTime::now(),
                    std::time::Duration::ZERO,
                );
            }
            // stdout belongs to COMMAND: the guard reports on stderr.
            eprint!("{}", describe_watch(&w));
            if cli.json {
                eprintln!(
                    "{}",
                    crate::report::json::to_string(&w, false).unwrap_or_default()
                );
            }
            step_summary(&w.passes, Some(w.exit_code));
            ExitCode::from(u8::try_from(w.exit_code).unwrap_or(1))
        }
        Err(e) => {
            eprintln!("error: cannot run {:?}: {e}", command[0]);
            ExitCode::from(127)
        }
    }
}

/// Records a pass that removed something in the history, as a run of origin `guard`.
fn record(
    ctx: &Context<'_>,
    pass: &crate::report::guard::Pass,
    started: std::time::SystemTime,
    took: std::time::Duration,
) {
    if pass.phases.iter().all(|p| p.actions == 0) {
        return;
    }
    let side = |buildkit: bool| -> u64 {
        pass.phases
            .iter()
            .filter(|p| {
                matches!(
                    p.phase,
                    cachekeeper_core::model::Phase::Buildkit
                        | cachekeeper_core::model::Phase::CacheMounts
                ) == buildkit
            })
            .map(|p| p.reclaimed_bytes)
            .sum()
    };
    let run = cachekeeper_core::model::RunRecord {
        trigger: "guard".into(),
        origin: "guard".into(),
        dry_run: false,
        started: cachekeeper_core::units::rfc3339(started),
        started_unix: started
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        reclaimed_bytes: pass.reclaimed_bytes,
        cargo_reclaimed_bytes: side(false),
        buildkit_reclaimed_bytes: side(true),
        buildkit_state: pass.buildkit.state.name().to_string(),
        blocked: pass.blocking.clone(),
        ..cachekeeper_core::model::RunRecord::default()
    };
    super::commands::keep_record(ctx, run, report::RunErrors::default());
}
