//! `doctor`: the outage it was made for reproduced with the real cargo, `.dockerignore` rules
//! compared with what the real engine receives, and each finding shown and not shown.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::running::{Daemon, daemon_section};
use crate::support::{Fixture, Tmpfs, ck};

/// `cachekeeper doctor` on a fixture's config, with no cargo settings of the machine's
/// (`$CARGO_TARGET_DIR`, `$CARGO_HOME`) leaking in unless `env` sets them.
pub(crate) fn doctor(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = ck();
    c.arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .arg("doctor")
        .args(args)
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_HOME", f.dir.path().join("cargo-home"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn doctor_json(f: &Fixture, env: &[(&str, &str)]) -> (Option<i32>, Value) {
    let out = doctor(f, &["--json"], env);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), v)
}

/// The findings with `id`.
pub(crate) fn with_id<'a>(v: &'a Value, id: &str) -> Vec<&'a Value> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .collect()
}

/// A fixture whose daemon socket is its own (no daemon there unless a test starts one).
fn fixture(sections: &str) -> Fixture {
    let f = Fixture::new();
    f.config_with("", &format!("{}\n{sections}", daemon_section(&f, "")));
    f
}

const PACKAGE: &str = "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n";

/// The Dockerfile of the postmortem: dependencies cached by building a placeholder main, then
/// the real sources copied over it and built again.
const DUMMY_DOCKERFILE: &str = "\
# syntax=docker/dockerfile:1
FROM rust:1.80 AS build
WORKDIR /app
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \\
 && echo 'fn main() {}' > src/main.rs \\
 && cargo build --release
COPY . .
RUN cargo build --release

FROM debian:bookworm-slim
COPY --from=build /app/target/release/app /usr/local/bin/app
CMD [\"app\"]
";

fn set_mtime(path: &Path, t: SystemTime) {
    filetime::set_file_mtime(path, filetime::FileTime::from_system_time(t)).unwrap();
}

#[test]
fn the_placeholder_binary_ships_with_the_real_cargo_and_doctor_flags_the_dockerfile_that_does_it() {
    let f = fixture("");
    // The Dockerfile's first build: a placeholder main.
    f.write("Cargo.toml", PACKAGE);
    f.write("src/main.rs", "fn main() {}\n");
    assert!(f.cargo(&["build"]).success);
    assert_eq!(f.run_bin("debug/app"), "");
    // `COPY . .`: the real sources arrive with the times they had in the checkout, older
    // than the placeholder's outputs.
    let built = std::fs::metadata(f.target().join("debug/app"))
        .unwrap()
        .modified()
        .unwrap();
    f.write(
        "src/main.rs",
        "fn main() {\n    println!(\"the real app\");\n}\n",
    );
    set_mtime(&f.ws.join("src/main.rs"), built - Duration::from_secs(3600));
    let second = f.cargo(&["build"]);
    assert!(second.success, "{}", second.stderr);
    assert!(
        second.recompiled().is_empty(),
        "cargo saw the real sources: {:?}",
        second.artifacts
    );
    assert_eq!(
        f.run_bin("debug/app"),
        "",
        "the image ships the placeholder, which does nothing and exits 0"
    );
    // The fix: touch before the real build.
    set_mtime(&f.ws.join("src/main.rs"), SystemTime::now());
    assert!(!f.cargo(&["build"]).recompiled().is_empty());
    assert_eq!(f.run_bin("debug/app"), "the real app\n");

    // doctor finds the Dockerfile that does this, where it starts, and says the fix.
    f.write(".dockerignore", "target\n");
    f.write("Dockerfile", DUMMY_DOCKERFILE);
    let out = doctor(&f, &[], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    let at = format!("[dummy-main] {}:5", f.ws.join("Dockerfile").display());
    assert!(text.contains(&at), "no {at} in:\n{text}");
    assert!(text.contains("fix: touch the real sources"), "{text}");
    assert!(
        text.contains("1 Dockerfile looked at; 1 error, 0 warnings."),
        "{text}"
    );
    let (_, v) = doctor_json(&f, &[]);
    let found = with_id(&v, "dummy-main");
    assert_eq!(found.len(), 1, "{v:#}");
    assert_eq!(found[0]["severity"], "error");
    assert_eq!(found[0]["line"], 5);
    assert_eq!(found[0]["project"], f.ws.display().to_string());

    // The fixed Dockerfile passes, and so does cargo-chef's way.
    f.write(
        "Dockerfile",
        &DUMMY_DOCKERFILE.replace(
            "RUN cargo build --release\n",
            "RUN touch src/main.rs && cargo build --release\n",
        ),
    );
    let out = doctor(&f, &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    f.write(
        "Dockerfile",
        "FROM rust:1.80 AS chef\nRUN cargo install cargo-chef\nWORKDIR /app\n\
         FROM chef AS planner\nCOPY . .\nRUN cargo chef prepare --recipe-path recipe.json\n\
         FROM chef AS builder\nCOPY --from=planner /app/recipe.json recipe.json\n\
         RUN cargo chef cook --release --recipe-path recipe.json\nCOPY . .\nRUN cargo build --release\n",
    );
    let (code, v) = doctor_json(&f, &[]);
    assert!(with_id(&v, "dummy-main").is_empty(), "{v:#}");
    assert_eq!(code, Some(0), "{v:#}");
}

#[test]
fn a_real_library_the_placeholder_lacked_rebuilds_the_binary_and_is_not_flagged() {
    let f = fixture("");
    f.write("Cargo.toml", PACKAGE);
    f.write("src/main.rs", "fn main() {}\n");
    assert!(f.cargo(&["build"]).success);
    let built = std::fs::metadata(f.target().join("debug/app"))
        .unwrap()
        .modified()
        .unwrap();
    let old = built - Duration::from_secs(3600);
    f.write(
        "src/lib.rs",
        "pub fn name() -> &'static str {\n    \"the real app\"\n}\n",
    );
    f.write(
        "src/main.rs",
        "fn main() {\n    println!(\"{}\", app::name());\n}\n",
    );
    set_mtime(&f.ws.join("src/lib.rs"), old);
    set_mtime(&f.ws.join("src/main.rs"), old);
    let second = f.cargo(&["build"]);
    assert!(second.success, "{}", second.stderr);
    assert_eq!(
        f.run_bin("debug/app"),
        "the real app\n",
        "cargo rebuilt the binary"
    );
    f.write(".dockerignore", "target\n");
    f.write("Dockerfile", DUMMY_DOCKERFILE);
    let (code, v) = doctor_json(&f, &[]);
    assert!(with_id(&v, "dummy-main").is_empty(), "{v:#}");
    assert_eq!(code, Some(0), "{v:#}");
}

/// A directory cargo would have tagged, with files of known sizes.
fn fake_target(dir: &Path, files: &[(&str, usize)]) {
    std::fs::create_dir_all(dir).unwrap();
    crate::support::cargo_tag(dir);
    for (rel, len) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, vec![b'x'; *len]).unwrap();
    }
}

/// Bytes of the regular files under `dir` (each inode once), 0 when it is absent.
fn file_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    if !dir.exists() {
        return 0;
    }
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap())
        .filter(|m| seen.insert(m.ino()))
        .map(|m| m.len())
        .sum()
}

#[test]
fn what_doctor_says_a_context_sends_is_what_the_engine_receives() {
    let Some((engine, _turn)) = crate::engine::engine() else {
        return;
    };
    let f = fixture(&crate::support::buildkit_section());
    let files = [
        ("debug/deps/libdep.rlib", 30_000),
        ("debug/build/dep-1/out/gen.rs", 7_000),
        ("release/app", 11_000),
        ("release/keep.txt", 500),
    ];
    fake_target(&f.ws.join("target"), &files);
    // cargo uplifts binaries as hard links: the engine sends such a file once.
    std::fs::hard_link(
        f.ws.join("target/release/app"),
        f.ws.join("target/release/deps-app"),
    )
    .unwrap();
    fake_target(&f.ws.join("crates/x/target"), &files[..2]);
    f.write("src/main.rs", "fn main() {}\n");
    f.write("Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    for ignore in [
        None,
        Some("target"),
        Some("/target/"),
        Some("**/target"),
        Some("*/*/target"),
        Some("target\n!target/release/keep.txt"),
        Some("**/target\n!**/target/debug/build"),
        Some("target/debug\n"),
    ] {
        let _ = std::fs::remove_file(f.ws.join(".dockerignore"));
        if let Some(text) = ignore {
            f.write(".dockerignore", text);
        }
        // What the engine receives: the context, copied into an image exported as a tar.
        let out = crate::suite::tempdir();
        let tar = out.path().join("ctx.tar");
        engine.ok(&[
            "build",
            "--output",
            &format!("type=tar,dest={}", tar.display()),
            f.ws.to_str().unwrap(),
        ]);
        let tree = out.path().join("tree");
        std::fs::create_dir_all(&tree).unwrap();
        assert!(
            std::process::Command::new("tar")
                .arg("-xmf")
                .arg(&tar)
                .arg("-C")
                .arg(&tree)
                .status()
                .unwrap()
                .success()
        );
        assert!(tree.join("ctx/src/main.rs").exists(), "the context arrived");
        let (code, v) = doctor_json(&f, &[]);
        let found = with_id(&v, "context-target");
        for rel in ["target", "crates/x/target"] {
            let sent = file_bytes(&tree.join("ctx").join(rel));
            let said = found
                .iter()
                .find(|x| {
                    x["why"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("{}/{rel} ", f.ws.display()))
                })
                .map_or(0, |x| x["bytes"].as_u64().unwrap());
            assert_eq!(said, sent, "{rel} with .dockerignore {ignore:?}: {v:#}");
        }
        let expected = if found.is_empty() { 0 } else { 1 };
        assert_eq!(code, Some(expected), "{ignore:?}: {v:#}");
        if ignore.is_none() {
            assert_eq!(found.len(), 2, "both target dirs are sent: {v:#}");
        }
        if ignore == Some("**/target") {
            assert!(found.is_empty(), "{v:#}");
        }
    }
}

#[test]
fn compose_builds_and_cache_mounts_shared_across_bases() {
    let f = fixture("");
    // Two services on different bases share cargo's target cache mount by its default id.
    let mount = "RUN --mount=type=cache,target=/app/target \\\n    cargo build --release\n";
    f.write(
        "docker/api.Dockerfile",
        &format!("FROM rust:1.80-slim\nWORKDIR /app\nCOPY . .\n{mount}"),
    );
    f.write(
        "worker/Dockerfile",
        &format!(
            "ARG BASE=rust:1.80-bookworm\nFROM ${{BASE}} AS build\nWORKDIR /app\nCOPY . .\n{mount}"
        ),
    );
    f.write(
        "compose.yaml",
        "services:\n  api:\n    build:\n      context: .\n      dockerfile: docker/api.Dockerfile\n  worker:\n    build: worker\n  db:\n    image: postgres:16\n",
    );
    f.write(".dockerignore", "**/target\n");
    f.write("worker/.dockerignore", "target\n");
    let (code, v) = doctor_json(&f, &[]);
    let files: Vec<&str> = v["dockerfiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        [
            f.ws.join("docker/api.Dockerfile").display().to_string(),
            f.ws.join("worker/Dockerfile").display().to_string()
        ]
    );
    let shared = with_id(&v, "shared-cache-mount");
    assert_eq!(shared.len(), 2, "{v:#}");
    let mut at: Vec<(String, u64, String)> = shared
        .iter()
        .map(|s| {
            (
                s["file"].as_str().unwrap().to_string(),
                s["line"].as_u64().unwrap(),
                s["project"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    at.sort();
    assert_eq!(
        at,
        [
            (
                f.ws.join("docker/api.Dockerfile").display().to_string(),
                4,
                f.ws.display().to_string()
            ),
            (
                f.ws.join("worker/Dockerfile").display().to_string(),
                5,
                f.ws.join("worker").display().to_string()
            ),
        ],
        "the Compose file's context is the project: {v:#}"
    );
    assert!(
        shared[0]["why"]
            .as_str()
            .unwrap()
            .contains("rust:1.80-bookworm")
            && shared[0]["why"]
                .as_str()
                .unwrap()
                .contains("rust:1.80-slim"),
        "the ARG is substituted: {v:#}"
    );
    assert_eq!(code, Some(5));
    // Ids that name the base: nothing to say.
    f.write(
        "worker/Dockerfile",
        "ARG BASE=rust:1.80-bookworm\nFROM ${BASE} AS build\nARG BASE\nWORKDIR /app\nCOPY . .\n\
         RUN --mount=type=cache,id=target-${BASE},target=/app/target cargo build --release\n",
    );
    let (code, v) = doctor_json(&f, &[]);
    assert!(with_id(&v, "shared-cache-mount").is_empty(), "{v:#}");
    // Where the tests' engine cannot run, BuildKit is off and nothing bounds the mounts.
    let bounded = crate::engine::shared().is_some();
    assert_eq!(code, Some(if bounded { 0 } else { 1 }), "{v:#}");
}

#[test]
fn cache_mounts_with_nothing_bounding_them() {
    let f = Fixture::new();
    let section = |buildkit: &str| format!("{}\n{buildkit}", daemon_section(&f, ""));
    f.write(
        "Dockerfile",
        "FROM rust:1.80\nWORKDIR /app\nCOPY . .\nRUN --mount=type=cache,target=/usr/local/cargo/registry \\\n    cargo build\n",
    );
    // The defaults give BuildKit a budget.
    if crate::engine::shared().is_some() {
        f.config_with("", &section(&crate::support::buildkit_section()));
        let (_, v) = doctor_json(&f, &[]);
        assert!(with_id(&v, "unbounded-cache-mounts").is_empty(), "{v:#}");
    }
    // No budget, and (on this machine) no GC limit in the engine's daemon.json.
    let engine_gc = std::fs::read_to_string("/etc/docker/daemon.json")
        .is_ok_and(|t| t.contains("defaultKeepStorage") || t.contains("\"policy\""));
    f.config_with("", &section("[buildkit]\nenabled = true\nbudget = \"none\"\ndocker-host = \"unix:///nonexistent/docker.sock\"\n"));
    let (code, v) = doctor_json(&f, &[]);
    if engine_gc {
        eprintln!("this engine bounds its own cache: no finding expected");
        assert!(with_id(&v, "unbounded-cache-mounts").is_empty(), "{v:#}");
        return;
    }
    let found = with_id(&v, "unbounded-cache-mounts");
    assert_eq!(found.len(), 1, "{v:#}");
    assert_eq!(found[0]["line"], 4);
    assert_eq!(found[0]["severity"], "warning");
    assert_eq!(code, Some(1), "a warning alone exits 1: {v:#}");
    // An engine that cannot be reached where it was named is a warning of its own.
    let engine = with_id(&v, "docker-engine");
    assert_eq!(engine[0]["severity"], "warning", "{v:#}");
}

#[test]
fn this_machine_target_dirs_elsewhere_a_broken_config_and_the_engine() {
    let f = fixture(&crate::support::buildkit_section());
    let (code, v) = doctor_json(&f, &[]);
    assert_eq!(code, Some(0), "a clean machine: {v:#}");
    assert!(with_id(&v, "target-dir-outside-roots").is_empty());
    assert!(with_id(&v, "config").is_empty());
    let layout = with_id(&v, "cargo-layout");
    assert!(
        layout[0]["why"].as_str().unwrap().starts_with("cargo 1."),
        "{v:#}"
    );
    if crate::engine::shared().is_some() {
        let engine = with_id(&v, "docker-engine");
        assert_eq!(engine[0]["severity"], "info", "{v:#}");
        assert!(
            engine[0]["why"].as_str().unwrap().contains("(API 1."),
            "{v:#}"
        );
    }
    // A target dir inside the roots is fine; one outside them, or a build-dir in cargo's own
    // config, grows unwatched.
    let inside = f.ws.join("shared-target");
    let (_, v) = doctor_json(&f, &[("CARGO_TARGET_DIR", inside.to_str().unwrap())]);
    assert!(with_id(&v, "target-dir-outside-roots").is_empty(), "{v:#}");
    let home = f.dir.path().join("cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        "[build]\nbuild-dir = \"/var/cache/cargo-builds\"\n",
    )
    .unwrap();
    let (code, v) = doctor_json(&f, &[("CARGO_TARGET_DIR", "/srv/elsewhere")]);
    let outside = with_id(&v, "target-dir-outside-roots");
    assert_eq!(outside.len(), 2, "{v:#}");
    assert!(
        outside[0]["why"]
            .as_str()
            .unwrap()
            .contains("/srv/elsewhere")
    );
    assert!(
        outside[1]["why"]
            .as_str()
            .unwrap()
            .contains("build.build-dir in")
    );
    assert_eq!(code, Some(1));
    std::fs::remove_file(home.join("config.toml")).unwrap();
    // A project's own .cargo/config.toml: relative to the project, inside the roots or not.
    f.write("Dockerfile", "FROM scratch\nCOPY . /\n");
    f.write(".dockerignore", "target\n");
    f.write(
        ".cargo/config.toml",
        "[build]\ntarget-dir = \"build/../shared-target\"\n",
    );
    let (_, v) = doctor_json(&f, &[]);
    assert!(with_id(&v, "target-dir-outside-roots").is_empty(), "{v:#}");
    f.write(
        ".cargo/config.toml",
        "[build]\ntarget-dir = \"../../ci-target\"\n",
    );
    let (_, v) = doctor_json(&f, &[]);
    let outside = with_id(&v, "target-dir-outside-roots");
    assert_eq!(outside.len(), 1, "{v:#}");
    let why = outside[0]["why"].as_str().unwrap();
    assert!(
        why.contains(".cargo/config.toml") && why.contains("/ci-target,"),
        "{why}"
    );
    std::fs::remove_file(f.ws.join(".cargo/config.toml")).unwrap();

    // A config that does not load is an error; the rest is still looked at, on the defaults.
    let config = f.dir.path().join("cachekeeper.toml");
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        good.replace("[disk]", "[disk]\nmin-fre = \"1GiB\""),
    )
    .unwrap();
    let out = doctor(&f, &[f.ws.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(5), "{text}");
    assert!(
        text.contains("[config]") && text.contains("min-fre"),
        "{text}"
    );
    assert!(
        text.contains("[cargo-layout]"),
        "the rest was looked at: {text}"
    );
}

#[test]
fn the_daemon_on_the_defaults_healthy_then_failing_a_reload() {
    let f = Fixture::new();
    // The built-in defaults, BuildKit on: only the roots, state dir and socket set.
    std::fs::write(
        f.dir.path().join("cachekeeper.toml"),
        format!(
            "[cargo]\nroots = [{:?}]\n{}\n{}",
            f.ws.display().to_string(),
            daemon_section(&f, ""),
            crate::support::buildkit_section()
        ),
    )
    .unwrap();
    f.write(
        "Dockerfile",
        "FROM rust:1.80\nCOPY . .\nRUN cargo build --release\n",
    );
    let d = Daemon::start(&f);
    let (code, v) = doctor_json(&f, &[]);
    let daemon = with_id(&v, "daemon");
    assert_eq!(daemon[0]["severity"], "info", "{v:#}");
    assert!(
        daemon[0]["why"]
            .as_str()
            .unwrap()
            .contains("up and healthy"),
        "{v:#}"
    );
    assert_eq!(code, Some(0), "{v:#}");
    // A reload that fails leaves the daemon on the old config, unhealthy: an error.
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{good}\n[disk]\nmin-free = \"lots\"\n")).unwrap();
    d.signal(rustix::process::Signal::HUP);
    d.wait_status("the reload error", |v| {
        !v["daemon"]["config_error"].is_null()
    });
    std::fs::write(&d.config, &good).unwrap();
    let (code, v) = doctor_json(&f, &[]);
    let daemon = with_id(&v, "daemon");
    assert_eq!(daemon[0]["severity"], "error", "{v:#}");
    assert!(
        daemon[0]["why"].as_str().unwrap().contains("unhealthy"),
        "{v:#}"
    );
    assert_eq!(code, Some(5));
}

#[test]
fn a_noatime_mount_without_a_daemon_is_named_and_with_one_it_is_not() {
    if !crate::suite::root("to mount a noatime tmpfs") {
        return;
    }
    let f = Fixture::new();
    let Some(mount) = Tmpfs::mount(f.dir.path().join("noatime"), "noatime,size=64m") else {
        return;
    };
    let ws = mount.0.join("ws");
    fake_target(&ws.join("target"), &[("debug/deps/libx.rlib", 1000)]);
    let roots = format!("roots = [{:?}]", ws.display().to_string());
    f.config_with(&roots, &daemon_section(&f, ""));
    let (code, v) = doctor_json(&f, &[]);
    let found = with_id(&v, "noatime-without-daemon");
    assert_eq!(found.len(), 1, "{v:#}");
    assert!(
        found[0]["why"]
            .as_str()
            .unwrap()
            .contains(&ws.join("target").display().to_string())
    );
    assert_eq!(code, Some(1));
    let _d = Daemon::start(&f);
    let (_, v) = doctor_json(&f, &[]);
    assert!(with_id(&v, "noatime-without-daemon").is_empty(), "{v:#}");
}
