//! The daemon as users run it, for the tests that need one: the real binary on a fixture's
//! config, READY awaited on a `NOTIFY_SOCKET`, and the CLI run beside it.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Fixture;

pub struct Daemon {
    pub child: Child,
    /// The config the daemon reads (tests may break it).
    pub config: PathBuf,
    /// A copy for the CLI, which refuses to run on an invalid config.
    pub client_config: PathBuf,
    pub log: PathBuf,
    pub ready: String,
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The `[daemon]` section for a fixture: its own state dir and socket, quick polling.
pub fn daemon_section(f: &Fixture, extra: &str) -> String {
    format!(
        "[daemon]\nstate-dir = \"{}\"\nsocket = \"{}\"\npoll-interval = \"1s\"\nmin-interval = \"1s\"\nrescan-interval = \"1h\"\nstop-timeout = \"15s\"\n{extra}",
        f.dir.path().join("state").display(),
        f.dir.path().join("run/ck.sock").display()
    )
}

impl Daemon {
    /// Starts `cachekeeper daemon` with the fixture's config and waits for READY.
    pub fn start(f: &Fixture) -> Daemon {
        Daemon::start_with_env(f, &[])
    }

    /// [`Daemon::start`] with more environment (say `CACHEKEEPER_LOG=debug`).
    pub fn start_with_env(f: &Fixture, env: &[(&str, &str)]) -> Daemon {
        let notify_path = f.dir.path().join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let log = f.dir.path().join(format!(
            "daemon-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let config = f.dir.path().join("cachekeeper.toml");
        let child = Command::new(env!("CARGO_BIN_EXE_cachekeeper"))
            .arg("--config")
            .arg(&config)
            .arg("daemon")
            .env("NOTIFY_SOCKET", &notify_path)
            // Not UTC, so that local times are seen to be local.
            .env("TZ", "Asia/Kolkata")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env_remove("CACHEKEEPER_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        crate::suite::adopt(&child);
        let mut buf = [0u8; 4096];
        let n = notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no READY from the daemon ({e}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
        let client_config = f.dir.path().join("client.toml");
        std::fs::copy(&config, &client_config).unwrap();
        Daemon {
            child,
            config,
            client_config,
            log,
            ready,
        }
    }

    pub fn ck(&self, args: &[&str]) -> std::process::Output {
        crate::support::ck()
            .arg("--config")
            .arg(&self.client_config)
            .args(args)
            .output()
            .unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ck(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Waits for the daemon to exit; `None` if it did not within `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `text` at least `times` times.
    pub fn wait_log(&self, text: &str, times: usize) {
        let t = Instant::now();
        while self.log().matches(text).count() < times {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "timed out waiting for {times} of {text:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `cond` holds of `status --json`.
    pub fn wait_status(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        self.wait_json(&["status"], what, cond)
    }

    /// Waits until `cond` holds of `history --json`.
    pub fn wait_history(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        self.wait_json(&["history"], what, cond)
    }

    fn wait_json(&self, args: &[&str], what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let v = self.json(args);
            if cond(&v) {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}: {v:#}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cachekeeper daemon` on the fixture's config expecting it to refuse to start: exit 1,
/// and returns what it said on stderr.
pub fn daemon_refuses(f: &Fixture) -> String {
    let out = crate::support::ck()
        .arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .arg("daemon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the daemon started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
