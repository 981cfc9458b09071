//! Fixtures: tiny cargo workspaces built with the real cargo in temp dirs, the cachekeeper
//! binary run against them, and the ways tests make time pass.
//!
//! Builds use path dependencies only and `--offline`, so they need no registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub const DAY: Duration = Duration::from_secs(86_400);

/// A temp dir holding a cargo workspace (`ws/`) and its target dir (`ws/target`).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ws: PathBuf,
    pub config: PathBuf,
}

/// What one cargo build did, from `--message-format json`.
#[derive(Debug)]
pub struct Build {
    pub success: bool,
    pub stderr: String,
    /// `package/target (kind)` of every compiler artifact, with whether it was fresh.
    pub artifacts: Vec<(String, bool)>,
}

impl Build {
    /// Artifacts cargo had to compile.
    pub fn recompiled(&self) -> Vec<&str> {
        self.artifacts
            .iter()
            .filter(|(_, fresh)| !fresh)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

/// The cargo crate manifest of a fixture crate.
pub struct Krate<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub bin: bool,
    /// Dependency lines for `[dependencies]`, e.g. `dep = { path = "../dep" }`.
    pub deps: &'a [&'a str],
    pub features: &'a [&'a str],
    pub build_rs: bool,
}

impl Default for Krate<'_> {
    fn default() -> Self {
        Krate {
            name: "",
            version: "0.1.0",
            bin: false,
            deps: &[],
            features: &[],
            build_rs: false,
        }
    }
}

/// Environment variables that would redirect or alter a fixture build.
const CARGO_ENV_NOISE: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_BUILD_TARGET",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_INCREMENTAL",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CACHEKEEPER_CONFIG",
    "CARGO_MAKEFLAGS",
];

impl Fixture {
    pub fn new() -> Fixture {
        let dir = crate::suite::tempdir();
        let ws = dir.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        let config = dir.path().join("cachekeeper.toml");
        let f = Fixture { dir, ws, config };
        f.config("");
        f
    }

    pub fn target(&self) -> PathBuf {
        self.ws.join("target")
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.ws.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn workspace(&self, members: &[&str]) {
        let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
        self.write(
            "Cargo.toml",
            &format!(
                "[workspace]\nmembers = [{}]\nresolver = \"2\"\n",
                list.join(", ")
            ),
        );
    }

    /// Writes (or rewrites) a crate. Its code prints its name and version and calls its
    /// dependencies, so a binary's output shows the whole graph ran.
    pub fn krate(&self, k: &Krate<'_>) {
        let mut manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"{}\"\nedition = \"2021\"\n",
            k.name, k.version
        );
        if k.build_rs {
            manifest.push_str("build = \"build.rs\"\n");
        }
        manifest.push_str("\n[dependencies]\n");
        for d in k.deps {
            manifest.push_str(d);
            manifest.push('\n');
        }
        if !k.features.is_empty() {
            manifest.push_str("\n[features]\n");
            for f in k.features {
                manifest.push_str(&format!("{f} = []\n"));
            }
        }
        self.write(&format!("{}/Cargo.toml", k.name), &manifest);
        let calls: String = k
            .deps
            .iter()
            .map(|d| d.split_whitespace().next().unwrap().replace('-', "_"))
            .map(|d| format!("    {d}::hello();\n"))
            .collect();
        let features: String = k
            .features
            .iter()
            .map(|f| format!("    #[cfg(feature = \"{f}\")]\n    println!(\"  feature {f}\");\n"))
            .collect();
        let body = format!(
            "pub fn hello() {{\n    println!(\"{} {}\");\n{features}{calls}}}\n",
            k.name, k.version
        );
        if k.bin {
            self.write(
                &format!("{}/src/main.rs", k.name),
                &format!("{body}\nfn main() {{\n    hello();\n}}\n"),
            );
        } else {
            self.write(&format!("{}/src/lib.rs", k.name), &body);
        }
        if k.build_rs {
            self.write(
                &format!("{}/build.rs", k.name),
                "fn main() {\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
                 let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
                 std::fs::write(format!(\"{out}/generated.txt\"), \"x\".repeat(4096)).unwrap();\n}\n",
            );
        }
    }

    /// A build script that only sleeps `ms` milliseconds: a run whose time is known.
    pub fn sleeping_build_rs(ms: u64) -> String {
        format!(
            "fn main() {{\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
             std::thread::sleep(std::time::Duration::from_millis({ms}));\n}}\n"
        )
    }

    /// The common fixture: a binary `app` depending on a library `dep` with a build script.
    pub fn app_and_dep(&self) {
        self.workspace(&["app", "dep"]);
        self.krate(&Krate {
            name: "dep",
            build_rs: true,
            ..Krate::default()
        });
        self.krate(&Krate {
            name: "app",
            bin: true,
            deps: &["dep = { path = \"../dep\" }"],
            ..Krate::default()
        });
    }

    /// `cargo` in the fixture's workspace and target dir, with the caller's cargo settings
    /// removed (for subcommands that take no `--message-format`, such as `clean`).
    pub fn cargo_cmd(&self, toolchain: Option<&str>) -> Command {
        let mut c = Command::new("cargo");
        if let Some(t) = toolchain {
            c.arg(format!("+{t}"));
        }
        for v in CARGO_ENV_NOISE {
            c.env_remove(v);
        }
        c.current_dir(&self.ws)
            .env("CARGO_TARGET_DIR", self.target())
            .env("CARGO_TERM_COLOR", "never")
            .stdin(Stdio::null());
        c
    }

    /// Runs `cargo <args> --offline --message-format json` with the default toolchain.
    pub fn cargo(&self, args: &[&str]) -> Build {
        self.cargo_with(None, &[], args)
    }

    pub fn cargo_with(
        &self,
        toolchain: Option<&str>,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Build {
        let mut c = self.cargo_cmd(toolchain);
        c.args(args).args(["--offline", "--message-format", "json"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("cargo runs");
        parse_build(&out)
    }

    /// Runs a built binary and returns its stdout.
    pub fn run_bin(&self, rel: &str) -> String {
        let out = Command::new(self.target().join(rel))
            .output()
            .expect("binary runs");
        assert!(out.status.success(), "{rel} failed: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes the cachekeeper config for this fixture: roots = the workspace, no budgets,
    /// default ages; each `key = value` line of `extra` replaces or adds a `[cargo]` key.
    pub fn config(&self, extra: &str) {
        self.config_with(extra, "");
    }

    /// Like [`Fixture::config`], with `sections` (whole TOML tables) appended.
    pub fn config_with(&self, extra: &str, sections: &str) {
        let mut keys: Vec<(String, String)> = vec![
            (
                "roots".into(),
                format!("[{:?}]", self.ws.display().to_string()),
            ),
            ("exclude".into(), "[]".into()),
            ("target-budget".into(), "\"none\"".into()),
            ("total-budget".into(), "\"none\"".into()),
            ("stale-after".into(), "\"30d\"".into()),
            ("min-age".into(), "\"1h\"".into()),
        ];
        for line in extra.lines().filter(|l| l.contains('=')) {
            let (k, v) = line.split_once('=').unwrap();
            let (k, v) = (k.trim().to_string(), v.trim().to_string());
            match keys.iter_mut().find(|(key, _)| *key == k) {
                Some(slot) => slot.1 = v,
                None => keys.push((k, v)),
            }
        }
        let body: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        // BuildKit on, as users run it, but never against the machine's own engine: the tests'
        // own dockerd (off, and said, where it cannot run).
        let sections = if sections.contains("[buildkit]") {
            sections.to_string()
        } else {
            format!("{sections}\n{}", buildkit_section())
        };
        // Its own state dir and socket, never the machine's: a `clean` records its run there, and
        // a daemon a developer runs is never asked. A daemon started on it never runs on its
        // schedule in mid-test (`far_schedule`).
        let sections = if sections.contains("[daemon]") {
            sections
        } else {
            format!(
                "{sections}\n[daemon]\nstate-dir = {:?}\nsocket = {:?}\nschedule = {:?}\n",
                self.dir.path().join("state").to_str().unwrap(),
                self.dir.path().join("run/ck.sock").to_str().unwrap(),
                crate::running::far_schedule(crate::running::KOLKATA)
            )
        };
        let text = format!("[cargo]\n{body}\n[disk]\nmin-free = \"none\"\n{sections}\n");
        std::fs::write(&self.config, text).unwrap();
    }

    /// Runs the cachekeeper binary with this fixture's config.
    pub fn ck(&self, args: &[&str]) -> Output {
        self.ck_env(args, &[])
    }

    pub fn ck_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = ck();
        c.arg("--config").arg(&self.config).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("cachekeeper runs")
    }

    /// Runs cachekeeper with `--json`, asserts exit 0, and parses stdout.
    pub fn ck_json(&self, args: &[&str]) -> Value {
        self.ck_json_env(args, &[])
    }

    pub fn ck_json_env(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.ck_env(&all, env);
        assert!(
            out.status.success(),
            "cachekeeper {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
    }

    /// Makes `by` pass for everything in the fixture (sources and target dir alike): every
    /// access and modification time moves back by `by`, so their order (what cargo's
    /// freshness checks compare) is unchanged. The next build then reads, and so re-stamps,
    /// exactly the fingerprints it uses.
    pub fn pass_time(&self, by: Duration) {
        // Renaming touches the crate dirs' mtimes: rename first, then shift every time.
        shift_session_names(&self.target(), by);
        shift_times(self.dir.path(), by);
    }

    /// Bytes allocated under `path`, measured by `du` (every inode once).
    pub fn du(&self, path: &Path) -> u64 {
        du(path)
    }
}

/// The `[buildkit]` section of a fixture's config: the tests' own engine with the default
/// settings, or BuildKit off where that engine cannot run (not root, no dockerd). Its timeout
/// is a minute: the engine is shared by every test of the run, and while others build images
/// and fill disks, sizing its cache can take longer than the default 10 s.
pub fn buildkit_section() -> String {
    match crate::engine::shared() {
        Some(e) => format!(
            "[buildkit]\ndocker-host = \"{}\"\ntimeout = \"60s\"\n",
            e.host()
        ),
        None => "[buildkit]\nenabled = false\n".into(),
    }
}

/// A tmpfs mounted for a test's life (needs root); `None`, with the reason printed, where
/// that cannot be done.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: PathBuf, options: &str) -> Option<Tmpfs> {
        if !crate::suite::root("to mount a tmpfs") {
            return None;
        }
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        crate::suite::prerequisite(
            ok,
            "a machine where root may mount a tmpfs",
            "run the tests outside an unprivileged container",
        )
        .then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Lets every user reach and read `dir` (and the dirs above it): for tests that run
/// cachekeeper as `nobody`.
pub fn open_to_everyone(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut p = dir.to_path_buf();
    loop {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        if mode & 0o005 != 0o005 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | 0o005)).unwrap();
        }
        if !p.pop() {
            break;
        }
    }
    assert!(
        Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir)
            .status()
            .unwrap()
            .success()
    );
}

pub fn du(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-sB1")
        .arg(path)
        .output()
        .expect("du runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Tags `dir` as cargo does (`CACHEDIR.TAG`), so cachekeeper takes it for a target dir.
pub fn cargo_tag(dir: &Path) {
    std::fs::write(
        dir.join("CACHEDIR.TAG"),
        "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n",
    )
    .unwrap();
}

/// The cachekeeper binary, with an environment that cannot leak a user's config in.
pub fn ck() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cachekeeper"));
    // Output as a pipe gets it, whatever the terminal running the tests forces.
    c.env_remove("CACHEKEEPER_CONFIG")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CACHEKEEPER_ORIGIN")
        // A run with no state dir configured records it here, never in the machine's.
        .env("STATE_DIRECTORY", crate::suite::dir().join("state"))
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .stdin(Stdio::null());
    c
}

/// Moves every inode's times back by `by`, each inode once (cargo's uplifted binaries are
/// hardlinks: shifting them per link would make them older than what they were built from).
pub fn shift_times(root: &Path, by: Duration) {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        if meta.file_type().is_symlink() || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        let back = |t: SystemTime| filetime::FileTime::from_system_time(t - by);
        filetime::set_symlink_file_times(
            &p,
            back(meta.accessed().unwrap()),
            back(meta.modified().unwrap()),
        )
        .unwrap();
    }
}

/// rustc names incremental sessions `s-<base36 µs since epoch>-...` (and their locks
/// likewise): renames them as if they had been created `by` earlier.
pub fn shift_session_names(target: &Path, by: Duration) {
    let Ok(profiles) = std::fs::read_dir(target) else {
        return;
    };
    for profile in profiles.flatten() {
        let Ok(crates) = std::fs::read_dir(profile.path().join("incremental")) else {
            continue;
        };
        for krate in crates.flatten() {
            for s in std::fs::read_dir(krate.path()).unwrap().flatten() {
                let name = s.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix("s-") else {
                    continue;
                };
                let (ts, tail) = rest.split_once('-').unwrap();
                let micros = u64::from_str_radix(ts, 36).unwrap() - by.as_micros() as u64;
                let renamed = format!("s-{}-{tail}", base36(micros));
                std::fs::rename(s.path(), krate.path().join(renamed)).unwrap();
            }
        }
    }
}

pub fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

fn parse_build(out: &Output) -> Build {
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["reason"] == "compiler-artifact" {
            let pkg = v["package_id"].as_str().unwrap_or("");
            // Package ids look like `path+file:///...#name@0.1.0` or `name 0.1.0 (...)`.
            let pkg = pkg.rsplit('#').next().unwrap_or(pkg);
            let name = format!(
                "{pkg}/{} ({})",
                v["target"]["name"].as_str().unwrap_or(""),
                v["target"]["kind"][0].as_str().unwrap_or("")
            );
            artifacts.push((name, v["fresh"].as_bool().unwrap_or(false)));
        }
    }
    Build {
        success: out.status.success(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        artifacts,
    }
}

/// Names of the units a clean's JSON report shows as removed (or that would be).
pub fn removed_units(report: &Value) -> Vec<String> {
    report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["item"] == "unit" && (a["status"] == "removed" || a["status"] == "would-remove")
        })
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

/// The unit dirs (`<pkg>-<hash>`) present in a profile's `.fingerprint/`.
pub fn fingerprint_dirs(target: &Path, profile: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(target.join(profile).join(".fingerprint"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Makes `depth` nested directories below `top` (created), each with a small file, and with
/// `siblings` empty directories beside each level: a tree far deeper than PATH_MAX allows to
/// name, so it is made one directory fd at a time.
pub fn deep_tree(top: &Path, depth: usize, siblings: usize) {
    use rustix::fs::{Mode, OFlags};
    use std::os::fd::AsFd;
    std::fs::create_dir_all(top).unwrap();
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rustix::fs::open(top, flags, Mode::empty()).unwrap();
    for _ in 0..depth {
        for s in 0..siblings {
            rustix::fs::mkdirat(&fd, format!("s{s}").as_str(), Mode::from_raw_mode(0o755)).unwrap();
        }
        let f = rustix::fs::openat(
            &fd,
            "f",
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, b"deep").unwrap();
        rustix::fs::mkdirat(&fd, "nested", Mode::from_raw_mode(0o755)).unwrap();
        fd = rustix::fs::openat(fd.as_fd(), "nested", flags, Mode::empty()).unwrap();
    }
}

/// A program on PATH the tests need, or `None` after saying the test skips what needs it
/// (only under `CACHEKEEPER_TEST_SKIP_MISSING=1`: otherwise a missing one fails the test with
/// the command that installs it). See [`crate::suite::program`].
pub fn tool(name: &str) -> Option<PathBuf> {
    crate::suite::program(name)
}

/// Runs its closure when it goes, on a failing test too.
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}
