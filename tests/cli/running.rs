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
    /// Its state dir (`daemon_section`'s).
    pub state: PathBuf,
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

/// The `[daemon]` section for a fixture: its own state dir and socket, quick polling, and
/// (unless `extra` sets one) a schedule that cannot fire while the test runs.
pub fn daemon_section(f: &Fixture, extra: &str) -> String {
    let schedule = if extra.contains("schedule =") {
        String::new()
    } else {
        format!("schedule = \"{}\"\n", far_schedule(KOLKATA))
    };
    format!(
        "[daemon]\nstate-dir = \"{}\"\nsocket = \"{}\"\npoll-interval = \"1s\"\nmin-interval = \"1s\"\nrescan-interval = \"1h\"\nstop-timeout = \"15s\"\nschedule-jitter = \"0s\"\n{schedule}{extra}",
        f.dir.path().join("state").display(),
        f.dir.path().join("run/ck.sock").display()
    )
}

/// The offset from UTC of the time zone the tests' daemons run in (`TZ=Asia/Kolkata`, which
/// has no daylight saving time).
pub const KOLKATA: u64 = 5 * 3600 + 30 * 60;

/// A daily schedule 12 hours from now, for a daemon whose local time is UTC plus `offset`
/// seconds. The built-in "0 3 * * *" fires at 21:30 UTC in the tests' time zone, and CI may be
/// running then: a scheduled run in mid-test is a run that no assertion expects (and on the
/// machine's engine, a real prune).
pub fn far_schedule(offset: u64) -> String {
    let then = unix_now() + offset + 12 * 3600;
    format!("{} {} * * *", then / 60 % 60, then / 3600 % 24)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whether the built-in schedule ("0 3 * * *", up to 10 minutes later by `schedule-jitter`)
/// fires within the hour, for a daemon whose local time is UTC plus `offset` seconds.
pub fn built_in_schedule_is_near(offset: u64) -> bool {
    let local = (unix_now() + offset) % 86_400;
    // From an hour before 03:00 to a few minutes after 03:10.
    (2 * 3600..3 * 3600 + 15 * 60).contains(&local)
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
            state: f.dir.path().join("state"),
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

    /// Stops the daemon (SIGSTOP) and returns once the kernel shows it stopped.
    pub fn pause(&self) {
        self.signal(rustix::process::Signal::STOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        // The state follows the command's closing parenthesis.
        let stopped = || {
            std::fs::read_to_string(&stat)
                .unwrap()
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        };
        let t = Instant::now();
        while !stopped() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the daemon did not stop"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// A crate of one unit under the daemon's roots, built again to tell when the daemon has seen
/// every event before: one inotify instance delivers its events in order, so once the use of
/// that build is recorded, so is everything before it ([`Daemon::barrier`]).
pub struct Barrier(pub Fixture);

impl Barrier {
    pub fn new() -> Barrier {
        let f = Fixture::new();
        f.workspace(&["zbarrier"]);
        f.krate(&crate::support::Krate {
            name: "zbarrier",
            ..crate::support::Krate::default()
        });
        assert!(f.cargo(&["build"]).success);
        Barrier(f)
    }

    /// Its workspace, to list in the daemon's roots (TOML-quoted).
    pub fn root(&self) -> String {
        format!("{:?}", self.0.ws.to_str().unwrap())
    }
}

/// A unit's record in the daemon's `last-use.json`: (unit, used, build).
pub type Recorded = (String, Option<u64>, Option<u64>);

impl Daemon {
    /// What the daemon's `last-use.json` says of the units of `target`, after asking it to save
    /// (a dry run's rescan saves before the next request is answered; cachekeeper's own reads
    /// are never uses).
    pub fn recorded(&self, target: &std::path::Path) -> Vec<Recorded> {
        self.ck(&["run-now", "--dry-run"]);
        self.json(&["status"]);
        let text = std::fs::read_to_string(self.state.join("last-use.json")).unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let mut out: Vec<Recorded> = v["targets"][target.to_str().unwrap()]
            .as_object()
            .map(|units| {
                units
                    .iter()
                    .map(|(k, s)| (k.clone(), s["used"].as_u64(), s["build"].as_u64()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Waits until the daemon has counted every event before now (see [`Barrier`]); returns
    /// the uses it counted since it started.
    pub fn barrier(&self, b: &Barrier) -> u64 {
        let before = self.recorded(&b.0.target());
        let build = b.0.cargo(&["build"]);
        assert!(build.success && build.recompiled().is_empty());
        let t = Instant::now();
        loop {
            let now = self.recorded(&b.0.target());
            if now.iter().any(|r| r.2.is_some()) && now != before {
                return self.json(&["status"])["daemon"]["tracking"]["uses"]
                    .as_u64()
                    .unwrap();
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the barrier build's use was never recorded: {:#} {:?} {}",
                self.json(&["status"])["daemon"],
                std::fs::read_to_string(self.state.join("last-use.json")),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
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
