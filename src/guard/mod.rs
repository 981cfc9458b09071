//! The CI runner disk guard's watch of a command: keep free space above a floor while the
//! command runs, with a pass ([`crate::run::guard::pass`], the flow every driver shares)
//! before it and whenever free space falls under the floor; and the CI step summary.
//!
//! Invariant: the guard never imports the daemon or the CLI.

use std::path::PathBuf;
use std::sync::Arc;

use crate::report::guard::{FsFree, Pass, Watch};
use crate::report::human;
use crate::run::guard::{free, involved, pass};
use cachekeeper_core::config::{Config, SizeSpec};
use cachekeeper_core::model::Mode;
use cachekeeper_sys::progress::Progress;

/// Appends the summary of `passes` to `$GITHUB_STEP_SUMMARY` (in Markdown), when it is set.
pub fn step_summary(passes: &[Pass], exit_code: Option<i32>) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let Some(md) = human::guard::step_summary(passes, exit_code) else {
        return;
    };
    // The runner names the file; a link planted at that name, or a FIFO, is not written to.
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(&path)
        && f.metadata().is_ok_and(|m| m.file_type().is_file())
    {
        let _ = f.write_all(md.as_bytes());
    }
}

/// Whether the child `pid` has exited, without reaping it (its status stays `wait`'s). A
/// child reaped already (`ECHILD`) has exited too.
fn exited(pid: rustix::process::Pid) -> bool {
    match rustix::process::waitid(
        rustix::process::WaitId::Pid(pid),
        rustix::process::WaitIdOptions::EXITED
            | rustix::process::WaitIdOptions::NOHANG
            | rustix::process::WaitIdOptions::NOWAIT,
    ) {
        Ok(status) => status.is_some(),
        Err(e) => e == rustix::io::Errno::CHILD,
    }
}

/// Runs `command`, checking free space every `interval` and freeing space under it when it
/// drops below the floor. SIGINT and SIGTERM are passed on to the command (a terminal's Ctrl-C
/// reaches the whole process group anyway; a CI runner's SIGTERM reaches only us).
pub async fn watch(
    config: &Config,
    roots: &[PathBuf],
    floor: SizeSpec,
    interval: std::time::Duration,
    command: &[std::ffi::OsString],
) -> std::io::Result<Watch> {
    use tokio::signal::unix::{SignalKind, signal};
    // The command's output owns the terminal: passes show no progress.
    let hidden = Arc::new(Progress::hidden());
    let first = pass(
        config,
        roots,
        floor,
        Arc::clone(&hidden),
        Mode::Execute,
        &|| false,
    )
    .await;
    let docker = first.buildkit.root_dir.clone();
    let mut passes = vec![first];
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()?;
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let ended = move || pid.is_some_and(exited);
    let forward = |sig| {
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, sig);
        }
    };
    let mut min_free: Option<u64> = None;
    let mut held = true;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: the pass above just ran
    let status = loop {
        // The command's end comes first: once it has exited (and let go of cargo's locks), no
        // pass runs, since the guard's job was to keep space while it ran.
        tokio::select! {
            biased;
            status = child.wait() => break status?,
            _ = term.recv() => forward(rustix::process::Signal::TERM),
            _ = int.recv() => forward(rustix::process::Signal::INT),
            _ = tick.tick() => {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    continue;
                }
                let fs = free(&involved(roots, docker.as_ref()), floor);
                for f in &fs {
                    min_free = Some(min_free.map_or(f.free_bytes, |m| m.min(f.free_bytes)));
                }
                if !fs.iter().all(FsFree::holds) {
                    held = false;
                    tracing::warn!("free space under the floor while the command runs: freeing space");
                    passes.push(pass(config, roots, floor, Arc::clone(&hidden), Mode::Execute, &ended).await);
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1));
    Ok(Watch {
        version: crate::report::SCHEMA_VERSION,
        command: command
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect(),
        exit_code,
        reclaimed_bytes: passes.iter().map(|p| p.reclaimed_bytes).sum(),
        passes,
        min_free_bytes: min_free,
        held,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_child_that_exited_is_seen_and_left_for_wait() {
        let pid = |c: &std::process::Child| {
            rustix::process::Pid::from_raw(i32::try_from(c.id()).unwrap()).unwrap()
        };
        let mut running = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!super::exited(pid(&running)));
        running.kill().unwrap();
        running.wait().unwrap();
        assert!(super::exited(pid(&running)), "reaped, it has exited");
        let mut done = std::process::Command::new("sh")
            .args(["-c", "exit 3"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !super::exited(pid(&done)) {
            assert!(std::time::Instant::now() < deadline, "never seen to exit");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            done.wait().unwrap().code(),
            Some(3),
            "its status is still there"
        );
    }
}
