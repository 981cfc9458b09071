//! What the test process owns, and how it is given back: one dir per test process
//! (`$TMPDIR/ck-test-<pid>`) holding every temp dir, fixture, private engine and mount the tests
//! make, and a reaper process that releases it all when the test process ends, however it ends.
//! Statics never drop and signals run no `Drop`, so the reaper (`reaper.sh`) is a process of its
//! own, in a session of its own, told of the long-lived processes the tests start and woken by
//! the end of its stdin. Dirs that a run killed too hard to reap (the reaper itself killed) are
//! swept by the next run, after checking their pid is gone.
//!
//! Also here: what the suite needs of the machine. A missing prerequisite fails the test with
//! one line naming it and the command that installs it (or, with
//! `CACHEKEEPER_TEST_SKIP_MISSING=1`, skips what needs it and says so).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The one set-up command that installs everything the suite needs (the one `.ci/run` uses).
pub const SETUP: &str = "sudo bash .ci/setup";

const REAPER: &str = include_str!("reaper.sh");

struct Run {
    dir: PathBuf,
    /// The write end of the reaper's stdin; the reaper reaps when it closes.
    reaper: Mutex<Option<ChildStdin>>,
}

fn temp_root() -> PathBuf {
    std::env::temp_dir()
}

fn run() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        sweep_dead_runs();
        let dir = temp_root().join(format!("ck-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the suite's dir in the temp dir");
        let reaper = start_reaper(&dir, false).map(|mut child| child.stdin.take().unwrap());
        Run {
            dir,
            reaper: Mutex::new(reaper),
        }
    })
}

fn reaper_command(dir: &Path, now: bool) -> Command {
    let mut c = Command::new("bash");
    c.args(["-c", "eval \"$CK_REAPER_SCRIPT\"", "ck-test-reaper"])
        .env("CK_REAPER_SCRIPT", REAPER)
        .env("CK_REAPER_DIR", dir)
        .env("CK_REAPER_NOW", if now { "1" } else { "0" })
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // A session of its own: no terminal's Ctrl-C and no signal to the suite's group reaches it.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(|| {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    c
}

fn start_reaper(dir: &Path, now: bool) -> Option<Child> {
    let mut c = reaper_command(dir, now);
    c.stdin(if now { Stdio::null() } else { Stdio::piped() });
    match c.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("note: no reaper ({e}): what this run leaves is swept by the next one");
            None
        }
    }
}

/// Reaps the dirs of earlier runs whose process is gone (or is no longer a test process).
fn sweep_dead_runs() {
    let Ok(entries) = std::fs::read_dir(temp_root()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `ck-test-dockerd-<pid>` is where earlier versions of the suite kept their engine.
        let Some(pid) = name
            .strip_prefix("ck-test-")
            .map(|p| p.strip_prefix("dockerd-").unwrap_or(p))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || is_test_process(pid) {
            continue;
        }
        if let Some(mut child) = start_reaper(&e.path(), true) {
            let _ = child.wait();
        }
    }
}

/// Whether `pid` is a running test process of this suite (the integration test binary).
fn is_test_process(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        exe.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("cli-"))
    })
}

/// The dir this test process keeps everything in; gone when the process is.
pub fn dir() -> &'static Path {
    &run().dir
}

/// A fresh temp dir inside the suite's dir (deleted on drop, and by the reaper in any case).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("t-")
        .tempdir_in(dir())
        .expect("a temp dir in the suite's dir")
}

/// Tells the reaper of a process that may outlive its test: it is stopped when the test
/// process ends, if it still runs then (checked by its start time, so a reused pid is spared).
pub fn adopt(child: &Child) {
    let pid = child.id();
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return;
    };
    let Some(start) = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.split_whitespace().nth(19))
    else {
        return;
    };
    let mut reaper = run()
        .reaper
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(w) = reaper.as_mut() {
        let _ = writeln!(w, "pid {pid} {start}");
        let _ = w.flush();
    }
}

fn skipping_allowed() -> bool {
    std::env::var_os("CACHEKEEPER_TEST_SKIP_MISSING").is_some_and(|v| v == "1")
}

/// Whether a prerequisite is there. When it is not: a failure with one line naming it and
/// `how` to get it, or (with `CACHEKEEPER_TEST_SKIP_MISSING=1`) `false` after saying what is
/// skipped.
pub fn prerequisite(present: bool, what: &str, how: &str) -> bool {
    if present {
        return true;
    }
    if skipping_allowed() {
        eprintln!("skipped: needs {what} ({how})");
        return false;
    }
    panic!(
        "missing prerequisite: {what}; {how} (or set CACHEKEEPER_TEST_SKIP_MISSING=1 to skip what needs it)"
    );
}

/// Whether the tests run as root; see [`prerequisite`].
pub fn root(why: &str) -> bool {
    prerequisite(
        rustix::process::geteuid().is_root(),
        &format!("root, {why}"),
        "run the tests as root (sudo -E cargo test --locked)",
    )
}

/// The path of a program the tests need (found on PATH, or at `path` when that is absolute);
/// see [`prerequisite`].
pub fn program(name: &str) -> Option<PathBuf> {
    let found = if name.starts_with('/') {
        Path::new(name).is_file().then(|| PathBuf::from(name))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    let package = package_of(name);
    prerequisite(
        found.is_some(),
        &format!("{name} (Debian: {package})"),
        &format!("run `{SETUP}`"),
    )
    .then(|| found.unwrap())
}

/// Where `.ci/setup` gets each program from.
fn package_of(program: &str) -> &'static str {
    match program.rsplit('/').next().unwrap_or(program) {
        "dockerd" | "docker" => "docker.io",
        "prometheus" | "promtool" => "prometheus",
        "prometheus-node-exporter" => "prometheus-node-exporter",
        "docker-compose" => "docker-compose",
        "kubernetes-validate" => "kubernetes-validate from PyPI",
        "man" => "man-db",
        "ssh" => "openssh-client",
        "sshd" => "openssh-server",
        "script" | "setpriv" => "util-linux",
        "zsh" => "zsh",
        "fish" => "fish",
        "openssl" => "openssl",
        "python3" => "python3",
        "systemd-analyze" => "systemd",
        "rsync" => "rsync",
        _ => "see .ci/setup",
    }
}
