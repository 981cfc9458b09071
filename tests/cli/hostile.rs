//! Hostile inputs, tried on the real binary (hardening, round 3): links planted where
//! cachekeeper writes, files `doctor` must not read or must read with care, and a fuzz of
//! `doctor` over random Dockerfiles, `.dockerignore` and Compose files, each run bounded in time
//! and memory.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::doctor::with_id;
use crate::running::{Daemon, daemon_section};
use crate::support::{DAY, Fixture, ck};

/// Runs `cmd` under a memory cap (`prlimit --as`, 2 GiB) and a time bound (120 s: the inputs
/// that ran past 300 s or grew to 24 GB fail it; a linear run takes a second).
fn bounded(cmd: Command) -> Output {
    let prlimit = crate::support::tool("prlimit").expect("prlimit (util-linux)");
    let mut c = Command::new(prlimit);
    c.arg("--as=2147483648").arg("--").arg(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    let dir = crate::suite::tempdir();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = c
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "still running after 120 s: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

fn doctor_cmd(f: &Fixture, args: &[&str]) -> Command {
    let mut c = ck();
    c.arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .arg("doctor")
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_HOME", f.dir.path().join("cargo-home"));
    c
}

/// A fixture with its own daemon socket and the BuildKit side off (doctor's project findings
/// are what these tests look at).
fn project() -> Fixture {
    let f = Fixture::new();
    f.config_with(
        "",
        &format!("{}\n[buildkit]\nenabled = false\n", daemon_section(&f, "")),
    );
    f
}

fn doctor_json(f: &Fixture) -> Value {
    let out = bounded(doctor_cmd(f, &["--json"]));
    assert!(
        matches!(out.status.code(), Some(0 | 1 | 5)),
        "doctor failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)))
}

/// A Compose file naming files outside the project (`/etc/shadow`, the whole filesystem as a
/// context): a finding; nothing is read or walked there.
#[test]
fn doctor_never_reads_what_a_compose_file_names_outside_the_roots() {
    let f = project();
    let secret = f.dir.path().join("secret");
    std::fs::write(&secret, "root:SECRET-HASH:0:0\n").unwrap();
    f.write(
        "compose.yaml",
        &format!(
            "services:\n  a:\n    build:\n      context: .\n      dockerfile: {}\n  b:\n    build:\n      context: /\n",
            secret.display()
        ),
    );
    let out = bounded(doctor_cmd(&f, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("SECRET-HASH"), "{text}");
    let v = doctor_json(&f);
    let outside = with_id(&v, "outside-roots");
    assert_eq!(outside.len(), 2, "{v:#}");
    assert!(
        outside[0]["why"].as_str().unwrap().contains("not read"),
        "{v:#}"
    );
}

/// A FIFO, a device, a huge file and terminal garbage where doctor reads a Dockerfile: each is
/// a finding (the size cap named), nothing hangs or fills memory, and no byte of a file reaches
/// the terminal unescaped.
#[test]
fn doctor_reads_only_small_regular_files_and_escapes_what_it_shows() {
    if !crate::suite::root("to make a device node") {
        return;
    }
    let f = project();
    let ws = &f.ws;
    let mk = |name: &str, kind: rustix::fs::FileType, dev: u64| {
        std::fs::create_dir_all(ws.join(name)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            ws.join(name).join("Dockerfile"),
            kind,
            rustix::fs::Mode::from_raw_mode(0o644),
            dev,
        )
        .unwrap();
    };
    mk("fifo", rustix::fs::FileType::Fifo, 0);
    mk(
        "zero",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 5),
    );
    // 50 MB of continuation lines.
    f.write("big/Dockerfile", &"RUN echo \\\n".repeat(5_000_000));
    // Garbage with terminal escapes, in a Dockerfile that does not parse.
    let mut garbage =
        b"FROM \x1b]0;owned\x07\x1b[2J scratch\nRUN --mount=type=\x1b[31mcache\n\x9b31m".to_vec();
    garbage.extend((0..100_000u32).map(|i| (i % 251) as u8));
    std::fs::create_dir_all(ws.join("garbage")).unwrap();
    std::fs::write(ws.join("garbage/Dockerfile"), &garbage).unwrap();
    // A FIFO or a device is no file the walk finds: a Compose file names them.
    f.write(
        "compose.yaml",
        "services:\n  a:\n    build:\n      context: fifo\n  b:\n    build:\n      context: zero\n",
    );
    let out = bounded(doctor_cmd(&f, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.bytes().any(|b| b == 0x1b || b == 0x07) && !text.contains('\u{9b}'),
        "raw control bytes reached the terminal"
    );
    let v = doctor_json(&f);
    let unreadable = with_id(&v, "dockerfile-unreadable");
    let why = |dir: &str| {
        unreadable
            .iter()
            .find(|u| u["file"].as_str().unwrap().contains(&format!("/{dir}/")))
            .map(|u| u["why"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no finding for {dir}: {v:#}"))
    };
    assert!(why("fifo").contains("a FIFO"), "{}", why("fifo"));
    assert!(why("zero").contains("character device"), "{}", why("zero"));
    assert!(why("big").contains("larger than 1 MiB"), "{}", why("big"));
}

/// A nested pattern that panicked globset, 20,000 ignore lines, and Compose YAML nested
/// 100,000 deep: findings, or plain work, in bounded time; never a panic.
#[test]
fn doctor_survives_hostile_ignore_files_and_compose_nesting() {
    let f = project();
    f.write("Dockerfile", "FROM scratch\nCOPY . /x\n");
    let nested = format!("{}b{}", "{a,".repeat(150), "}".repeat(150));
    let many: String = (0..20_000).map(|n| format!("dir{n}/file{n}\n")).collect();
    f.write(".dockerignore", &format!("target\n{nested}\n{many}"));
    std::fs::create_dir_all(f.target()).unwrap();
    crate::support::cargo_tag(&f.target());
    f.write(
        "sub/compose.yaml",
        &format!(
            "services:\n  a:\n    build: {}{}\n",
            "[".repeat(100_000),
            "]".repeat(100_000)
        ),
    );
    let out = bounded(doctor_cmd(&f, &["--json"]));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let invalid = with_id(&v, "dockerignore-invalid");
    assert_eq!(invalid.len(), 1, "{v:#}");
    assert!(
        invalid[0]["why"].as_str().unwrap().contains("line 2"),
        "{v:#}"
    );
    let compose = with_id(&v, "compose-unreadable");
    assert!(
        compose[0]["why"].as_str().unwrap().contains("nests"),
        "{v:#}"
    );
}

/// Random Dockerfiles, `.dockerignore` and Compose files, made of the pieces their parsers
/// split on: doctor exits with one of its codes, within the time and memory bounds, and never
/// panics (exit 101).
#[test]
fn doctor_fuzzed_with_random_files_never_panics_or_runs_away() {
    let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let pieces: &[&str] = &[
        "FROM ",
        "RUN ",
        "COPY ",
        "ARG ",
        "AS ",
        "--mount=type=cache,target=",
        "--from=",
        "\\\n",
        "<<EOF\n",
        "EOF\n",
        "\n",
        "$",
        "${",
        "}",
        "{",
        "[",
        "]",
        "\"",
        "'",
        "*",
        "**",
        "!",
        "/",
        "..",
        "target",
        "src/main.rs",
        "cargo build",
        "#",
        " ",
        ":",
        "- ",
        "services:",
        "build:",
        "context: ",
        "dockerfile: ",
        "\t",
        "\u{1b}[",
        "\0",
        "\u{feff}",
        "é",
        "&",
        "|",
        "?",
    ];
    for round in 0..25 {
        let f = project();
        for (name, parts) in [
            ("Dockerfile", 400),
            (".dockerignore", 200),
            ("compose.yaml", 300),
        ] {
            let text: String = (0..parts)
                .map(|_| pieces[(next() as usize) % pieces.len()])
                .collect();
            f.write(name, &text);
        }
        std::fs::create_dir_all(f.target()).unwrap();
        crate::support::cargo_tag(&f.target());
        let out = bounded(doctor_cmd(&f, &["--json"]));
        assert!(
            matches!(out.status.code(), Some(0 | 1 | 5)),
            "round {round}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let _: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("round {round}: no JSON: {e}"));
    }
}

/// The state a fixture's daemon section names.
fn state(f: &Fixture) -> PathBuf {
    f.dir.path().join("state")
}

/// A link planted at the history's path, at the name of last use's temporary file and at the
/// textfile's: a run writes through none of them, and its files are 0600.
#[test]
fn nothing_is_written_through_a_planted_link() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let decoy = f.dir.path().join("decoy");
    std::fs::write(&decoy, "precious").unwrap();
    let metrics = f.dir.path().join("metrics");
    std::fs::create_dir_all(&metrics).unwrap();
    std::fs::set_permissions(&metrics, std::fs::Permissions::from_mode(0o755)).unwrap();
    let st = state(&f);
    std::fs::create_dir_all(&st).unwrap();
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&decoy, st.join("history.jsonl")).unwrap();
    f.config_with(
        "",
        &format!(
            "{}\n[metrics]\ntextfile = {:?}\n",
            daemon_section(&f, ""),
            metrics.join("ck.prom").to_str().unwrap()
        ),
    );
    // The CLI's run: its history append meets the link.
    let out = f.ck(&["clean", "--cargo-only"]);
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not in the history"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The daemon: links at the temporary names it picks first (its pid is in them).
    std::fs::remove_file(st.join("history.jsonl")).unwrap();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let d = Daemon::start(&f);
    let pid = d.child.id();
    for n in 0..3 {
        std::os::unix::fs::symlink(&decoy, st.join(format!(".last-use.json.{pid}.{n}.tmp")))
            .unwrap();
        std::os::unix::fs::symlink(&decoy, metrics.join(format!(".ck.prom.{pid}.{n}.tmp")))
            .unwrap();
    }
    let run = d.json(&["run-now"]);
    assert!(
        run["cargo_reclaimed_bytes"].as_u64().unwrap() > 0,
        "{run:#}"
    );
    d.json(&["status"]);
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious");
    for name in ["history.jsonl", "last-use.json"] {
        let mode = std::fs::metadata(st.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}");
    }
    assert!(
        std::fs::read_to_string(metrics.join("ck.prom"))
            .unwrap()
            .contains("cachekeeper_")
    );
}

/// A state dir others may write to is refused; one the daemon cannot write makes it
/// degraded, said by healthcheck and status, and counted; it runs on (and cleans).
#[test]
fn a_state_dir_that_cannot_be_used_makes_the_daemon_degraded_and_says_why() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let st = state(&f);
    std::fs::create_dir_all(&st).unwrap();
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o777)).unwrap();
    f.config_with("", &daemon_section(&f, ""));
    let d = Daemon::start(&f);
    let out = d.ck(&["healthcheck"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("degraded") && err.contains("others may write to it"),
        "{err}"
    );
    let v = d.json(&["status"]);
    assert!(
        v["daemon"]["degraded"]
            .as_str()
            .unwrap()
            .contains("state dir"),
        "{v:#}"
    );
    let text = String::from_utf8_lossy(&d.ck(&["status"]).stdout).into_owned();
    assert!(text.contains("DEGRADED"), "{text}");
    // Fixed: the next save finds it usable, and health comes back.
    std::fs::set_permissions(&st, std::fs::Permissions::from_mode(0o700)).unwrap();
    d.ck(&["run-now", "--dry-run"]);
    let t = Instant::now();
    while d.ck(&["healthcheck"]).status.code() != Some(0) {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", d.log());
        d.ck(&["run-now", "--dry-run"]);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Hardening issue: an empty config file on SIGHUP was taken as the defaults (roots, budgets
/// and schedule silently changed). It is refused; the old config stays, and says why.
#[test]
fn an_emptied_config_on_reload_keeps_the_old_one() {
    let f = Fixture::new();
    f.config_with("", &daemon_section(&f, "schedule = \"0 4 * * *\"\n"));
    let d = Daemon::start(&f);
    std::fs::write(&d.config, "# nothing here yet\n").unwrap();
    d.signal(rustix::process::Signal::HUP);
    let v = d.wait_status("the refused reload", |v| {
        !v["daemon"]["config_error"].is_null()
    });
    let err = v["daemon"]["config_error"].as_str().unwrap();
    assert!(err.contains("is empty now"), "{err}");
    assert_eq!(v["daemon"]["schedule"], "0 4 * * *");
}

/// Hardening issue: `DOCKER_TLS_VERIFY=1` with its files missing spoke plain HTTP; `check-config`
/// said nothing of metrics on every interface; a schedule that never runs was accepted.
#[test]
fn weaker_security_is_never_silent() {
    let f = Fixture::new();
    let certs = f.dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    f.config_with(
        "",
        &format!(
            "{}\n[buildkit]\ndocker-host = \"tcp://127.0.0.1:9\"\ntimeout = \"2s\"\n",
            daemon_section(&f, "")
        ),
    );
    let v = f.ck_json_env(
        &["status"],
        &[
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", certs.to_str().unwrap()),
        ],
    );
    let msg = v["buildkit"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("asks for TLS") && msg.contains("ca.pem"),
        "{:#}",
        v["buildkit"]
    );
    let cfg = f.dir.path().join("open.toml");
    std::fs::write(&cfg, "[metrics]\nlisten = \"0.0.0.0:9184\"\n").unwrap();
    let out = ck().args(["check-config"]).arg(&cfg).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("is not loopback"), "{all}");
    std::fs::write(&cfg, "[daemon]\nschedule = \"0 0 31 2 *\"\n").unwrap();
    let out = ck().args(["check-config"]).arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("never runs"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The CI step summary is appended to the file the runner names: a link planted at that name
/// is never written through (the guard may run as root on a self-hosted runner).
#[test]
fn the_step_summary_is_never_written_through_a_planted_link() {
    let f = Fixture::new();
    f.app_and_dep();
    f.config("");
    let guard = |summary: &std::path::Path| {
        let out = f.ck_env(
            &["guard", "--min-free", "0B"],
            &[("GITHUB_STEP_SUMMARY", summary.to_str().unwrap())],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let decoy = f.dir.path().join("decoy");
    std::fs::write(&decoy, "precious\n").unwrap();
    let link = f.dir.path().join("summary-link.md");
    std::os::unix::fs::symlink(&decoy, &link).unwrap();
    guard(&link);
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious\n");
    // The same run with a plain file writes it: the check above can fail.
    let plain = f.dir.path().join("summary.md");
    guard(&plain);
    assert!(
        std::fs::read_to_string(&plain)
            .unwrap()
            .contains("cachekeeper guard")
    );
}
