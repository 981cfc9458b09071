//! The container image and the Compose file, run in the tests' own engine.
//!
//! No image can be pulled here, so the repository's Dockerfile is built with its two bases
//! replaced by images made on the spot: `BINARY`, holding the binary this test run built, and
//! `RUNTIME_IMAGE`, `FROM scratch` with the shared libraries that binary needs. Everything else
//! (user, dirs, environment, healthcheck, stop signal, entrypoint) is the Dockerfile's own.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::engine::{TestEngine, engine, libraries, place};
use crate::support::{DAY, Fixture, fingerprint_dirs, tool};

const IMAGE: &str = "cachekeeper:test";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the image from the repository's Dockerfile, as described above.
fn build_image(e: &TestEngine) {
    let bin = env!("CARGO_BIN_EXE_cachekeeper");
    let runtime = crate::suite::tempdir();
    for lib in libraries(bin) {
        place(&runtime.path().join("root"), &lib);
    }
    std::fs::write(
        runtime.path().join("Dockerfile"),
        "FROM scratch\nCOPY root/ /\n",
    )
    .unwrap();
    e.ok(&[
        "build",
        "-q",
        "-t",
        "ck-test-runtime:latest",
        runtime.path().to_str().unwrap(),
    ]);

    // What the Dockerfile's build stage leaves in /out/root.
    let binary = crate::suite::tempdir();
    let out = binary.path().join("out/root");
    std::fs::create_dir_all(out.join("usr/local/bin")).unwrap();
    std::fs::copy(bin, out.join("usr/local/bin/cachekeeper")).unwrap();
    for dir in ["var/lib/cachekeeper", "run/cachekeeper"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(out.join(dir)).unwrap();
        std::fs::set_permissions(out.join(dir), std::fs::Permissions::from_mode(0o1777)).unwrap();
    }
    std::fs::write(
        binary.path().join("Dockerfile"),
        "FROM scratch\nCOPY out /out\n",
    )
    .unwrap();
    e.ok(&[
        "build",
        "-q",
        "-t",
        "ck-test-binary:latest",
        binary.path().to_str().unwrap(),
    ]);

    e.ok(&[
        "build",
        "-q",
        "--build-arg",
        "BINARY=ck-test-binary:latest",
        "--build-arg",
        "RUNTIME_IMAGE=ck-test-runtime:latest",
        "-t",
        IMAGE,
        repo().to_str().unwrap(),
    ]);
}

/// A workspace built two months ago: every unit is stale.
fn stale(f: &Fixture) {
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
}

fn inspect(e: &TestEngine, container: &str, format: &str) -> String {
    e.ok(&["inspect", "-f", format, container])
        .trim()
        .to_string()
}

fn wait_healthy(e: &TestEngine, container: &str) {
    let t = Instant::now();
    loop {
        let health = inspect(e, container, "{{.State.Health.Status}}");
        if health == "healthy" {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90) && health != "unhealthy",
            "{container} is {health}: {}",
            String::from_utf8_lossy(&e.docker(&["logs", container]).stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Removes a container whatever happens to the test.
struct Removed<'a>(&'a TestEngine, &'static str);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker(&["rm", "-f", self.1]);
    }
}

#[test]
fn the_image_gets_healthy_cleans_what_is_mounted_prunes_by_budget_and_stops_cleanly() {
    let Some((e, _turn)) = engine() else { return };
    build_image(e);
    // BuildKit records no image shares, older than the container's own.
    for name in ["a.bin", "b.bin"] {
        e.unshared_layer(name, 300);
    }
    let before = e.docker_df().len();
    let f = Fixture::new();
    stale(&f);
    let config = f.dir.path().join("container.toml");
    std::fs::write(
        &config,
        "[cargo]\nroots = [\"/work\"]\n[buildkit]\nbudget = \"1 B\"\nmin-age = \"0s\"\n",
    )
    .unwrap();

    let name = "ck-test-container";
    let _ = e.docker(&["rm", "-f", name]);
    let _removed = Removed(e, name);
    e.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        // The fixture is root's: the user owning the work dirs is the one to run as.
        "--user",
        "0:0",
        "--health-interval",
        "1s",
        "-v",
        &format!("{}:/var/run/docker.sock", e.socket.display()),
        "-v",
        &format!("{}:/work", f.ws.display()),
        "-v",
        &format!("{}:/etc/cachekeeper/config.toml:ro", config.display()),
        IMAGE,
    ]);
    wait_healthy(e, name);

    let run: Value =
        serde_json::from_str(&e.ok(&["exec", name, "cachekeeper", "run-now", "--json"])).unwrap();
    assert!(
        run["cargo_reclaimed_bytes"].as_u64().unwrap() > 0,
        "{run:#}"
    );
    let pruned: Vec<&str> = run["buildkit"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "removed")
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(!pruned.is_empty(), "{run:#}");
    // On the host: what it removed is gone (a fresh daemon trusts the file times from before it
    // watched, as the CLI does: every unit of the two-month-old build is stale), and the engine
    // lists fewer records.
    let removed: Vec<&str> = run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "removed")
        .flat_map(|a| a["paths"].as_array().unwrap())
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(!removed.is_empty(), "{run:#}");
    for p in &removed {
        assert!(!f.target().join(p).exists(), "{p} is still there");
    }
    assert!(
        fingerprint_dirs(&f.target(), "debug").is_empty(),
        "{:?}",
        fingerprint_dirs(&f.target(), "debug")
    );
    let left: Vec<String> = e.docker_df().into_iter().map(|r| r.0).collect();
    assert!(left.len() < before);
    for id in &pruned {
        assert!(
            left.iter().all(|l| !id.starts_with(l.as_str())),
            "{id} is still listed"
        );
    }
    assert!(f.cargo(&["build"]).success);

    // docker stop sends SIGTERM (the image's STOPSIGNAL): out cleanly, well inside the grace.
    let t = Instant::now();
    e.ok(&["stop", "-t", "30", name]);
    assert!(t.elapsed() < Duration::from_secs(25), "{:?}", t.elapsed());
    assert_eq!(inspect(e, name, "{{.State.ExitCode}}"), "0");
}

#[test]
fn compose_brings_it_up_healthy_and_takes_it_down() {
    let Some((e, _turn)) = engine() else { return };
    let Some(compose) = tool("docker-compose") else {
        return;
    };
    build_image(e);
    let f = Fixture::new();
    stale(&f);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The repository's compose.toml, on a free port (the service shares the host's network).
    let shipped = std::fs::read_to_string(repo().join("deploy/compose.toml")).unwrap();
    let config = f.dir.path().join("compose.toml");
    std::fs::write(&config, shipped.replace(":9184", &format!(":{port}"))).unwrap();
    let project = format!("cktest{}", std::process::id());
    let run = |args: &[&str]| {
        Command::new(&compose)
            .arg("-f")
            .arg(repo().join("deploy/compose.yaml"))
            .args(["-p", &project])
            .args(args)
            .env("DOCKER_HOST", e.host())
            .env("CACHEKEEPER_IMAGE", IMAGE)
            .env("CACHEKEEPER_WORK", &f.ws)
            .env("CACHEKEEPER_CONFIG_FILE", &config)
            .env("CACHEKEEPER_HEALTH_INTERVAL", "1s")
            .output()
            .unwrap()
    };
    let up = run(&["up", "-d", "--no-build"]);
    let mut project = Down {
        run: &run,
        done: false,
    };
    assert!(
        up.status.success(),
        "up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let id = String::from_utf8_lossy(&run(&["ps", "-q", "cachekeeper"]).stdout)
        .trim()
        .to_string();
    wait_healthy(e, &id);
    // It found the mounted workspace, and serves metrics on the host's loopback.
    let (code, _, text) = crate::metrics::get(port, "/metrics", None);
    assert_eq!(code, 200);
    assert!(
        text.contains("cachekeeper_target_dirs 1"),
        "{text}\n{}",
        inspect(e, &id, "{{json .Mounts}}")
    );
    let t = Instant::now();
    let out = project.down();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        t.elapsed() < Duration::from_secs(50),
        "down took {:?}",
        t.elapsed()
    );
}

/// Takes a Compose project down whatever happens to the test.
struct Down<'a> {
    run: &'a dyn Fn(&[&str]) -> std::process::Output,
    done: bool,
}

impl Down<'_> {
    fn down(&mut self) -> std::process::Output {
        self.done = true;
        (self.run)(&["down", "-v"])
    }
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = (self.run)(&["down", "-v"]);
        }
    }
}
