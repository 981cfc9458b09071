//! Docker hosts found the way the docker CLI finds them: a context (current, or named by
//! `$DOCKER_CONTEXT`) made with the real `docker context create`, TLS with client certificates
//! against the tests' engine's TLS listener, and `ssh://` through a real sshd.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::engine::{TestEngine, shared};
use crate::support::{Fixture, tool};

/// A fixture whose config names no docker host: the environment decides.
fn undirected() -> Fixture {
    let f = Fixture::new();
    std::fs::write(
        f.dir.path().join("cachekeeper.toml"),
        format!(
            "[cargo]\nroots = [{:?}]\n[buildkit]\ntimeout = \"60s\"\n",
            f.ws.display().to_string()
        ),
    )
    .unwrap();
    f
}

/// `status` with `env` (and no DOCKER_* of the test process's own): its JSON and its text.
fn status(f: &Fixture, env: &[(&str, &str)]) -> (Value, String) {
    let run = |args: &[&str]| {
        let mut c = crate::support::ck();
        c.arg("--config").arg(f.dir.path().join("cachekeeper.toml"));
        for k in [
            "DOCKER_HOST",
            "DOCKER_CONTEXT",
            "DOCKER_TLS_VERIFY",
            "DOCKER_CERT_PATH",
        ] {
            c.env_remove(k);
        }
        c.env("DOCKER_CONFIG", f.dir.path().join("docker-config"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    };
    let json = run(&["status", "--json"]);
    let human = run(&["status"]);
    (
        serde_json::from_slice(&json.stdout).unwrap(),
        String::from_utf8_lossy(&human.stdout).into_owned(),
    )
}

/// The docker CLI with the fixture's config dir.
fn docker(f: &Fixture, args: &[&str]) {
    let out = Command::new("/usr/bin/docker")
        .args(args)
        .env("DOCKER_CONFIG", f.dir.path().join("docker-config"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_current_context_or_docker_context_names_the_engine_and_status_says_which() {
    let Some(e) = shared() else { return };
    let f = undirected();
    let socket = format!("host={}", e.host());
    docker(&f, &["context", "create", "ck-test", "--docker", &socket]);
    docker(
        &f,
        &[
            "context",
            "create",
            "ck-nowhere",
            "--docker",
            "host=unix:///nonexistent.sock",
        ],
    );
    docker(&f, &["context", "use", "ck-test"]);

    let (v, human) = status(&f, &[]);
    assert_eq!(v["buildkit"]["state"], "ok", "{v:#}");
    assert_eq!(v["buildkit"]["host"], e.host());
    assert_eq!(v["buildkit"]["context"], "ck-test");
    assert!(human.contains("docker context \"ck-test\""), "{human}");

    // $DOCKER_CONTEXT wins over the current one (here: an engine that is not there, said
    // loudly because a context named it).
    let (v, _) = status(&f, &[("DOCKER_CONTEXT", "ck-nowhere")]);
    assert_eq!(v["buildkit"]["state"], "unavailable", "{v:#}");
    assert!(
        v["buildkit"]["message"]
            .as_str()
            .unwrap()
            .contains("unix:///nonexistent.sock"),
        "{v:#}"
    );
    // And $DOCKER_HOST wins over both.
    let (v, _) = status(
        &f,
        &[("DOCKER_CONTEXT", "ck-nowhere"), ("DOCKER_HOST", &e.host())],
    );
    assert_eq!(v["buildkit"]["state"], "ok", "{v:#}");
    assert!(v["buildkit"]["context"].is_null());
    // A context that does not exist is an error that says so.
    let (v, _) = status(&f, &[("DOCKER_CONTEXT", "ck-missing")]);
    assert!(
        v["buildkit"]["message"]
            .as_str()
            .unwrap()
            .contains("\"ck-missing\" not found"),
        "{v:#}"
    );
}

#[test]
fn tls_with_client_certificates_from_the_environment_or_a_context() {
    let Some(e) = shared() else { return };
    let Some((port, certs)) = &e.tls else {
        crate::suite::program("openssl");
        return;
    };
    let f = undirected();
    let host = format!("tcp://127.0.0.1:{port}");
    let dir = certs.to_str().unwrap();
    let (v, _) = status(
        &f,
        &[
            ("DOCKER_HOST", &host),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", dir),
        ],
    );
    assert_eq!(v["buildkit"]["state"], "ok", "{v:#}");
    assert_eq!(v["buildkit"]["host"], host);
    // Without TLS the engine will not talk to us.
    let (v, _) = status(&f, &[("DOCKER_HOST", &host)]);
    assert_eq!(v["buildkit"]["state"], "unavailable", "{v:#}");
    // A context with the TLS material in the store.
    let tls = format!("host={host},ca={dir}/ca.pem,cert={dir}/cert.pem,key={dir}/key.pem");
    docker(&f, &["context", "create", "ck-tls", "--docker", &tls]);
    let (v, human) = status(&f, &[("DOCKER_CONTEXT", "ck-tls")]);
    assert_eq!(v["buildkit"]["state"], "ok", "{v:#}");
    assert!(human.contains("docker context \"ck-tls\""), "{human}");
}

/// A real sshd on a loopback port, running as root, accepting one key, passing DOCKER_HOST.
struct Sshd {
    child: Child,
    port: u16,
    /// A directory with an `ssh` that uses this server's client config (first on PATH).
    bin: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd(dir: &Path, engine: &TestEngine) -> Option<Sshd> {
    let sshd = crate::suite::program("/usr/sbin/sshd")?;
    let ssh = tool("ssh")?;
    let keygen = |file: &Path| {
        assert!(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(file)
                .status()
                .unwrap()
                .success()
        );
    };
    keygen(&dir.join("host_key"));
    keygen(&dir.join("user_key"));
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\nUsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\nAcceptEnv DOCKER_HOST\n",
            dir.join("host_key").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        ),
    )
    .unwrap();
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(dir.join("sshd_config"))
        .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
        .spawn()
        .unwrap();
    std::fs::write(
        dir.join("ssh_config"),
        format!(
            "Host *\n  IdentityFile {}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n  SetEnv DOCKER_HOST={}\n",
            dir.join("user_key").display(),
            engine.host()
        ),
    )
    .unwrap();
    // ssh reads its config from the passwd home, not $HOME: a wrapper hands it ours.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec {} -F {} \"$@\"\n",
            ssh.display(),
            dir.join("ssh_config").display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sshd did not start: {}",
            std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(Sshd { child, port, bin })
}

#[test]
fn an_ssh_host_is_reached_through_docker_system_dial_stdio() {
    let Some(e) = shared() else { return };
    let f = undirected();
    let Some(server) = sshd(f.dir.path(), e) else {
        return;
    };
    let path = format!(
        "{}:{}",
        server.bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let host = format!("ssh://root@127.0.0.1:{}", server.port);
    let (v, _) = status(&f, &[("DOCKER_HOST", &host), ("PATH", &path)]);
    assert_eq!(v["buildkit"]["state"], "ok", "{v:#}");
    assert_eq!(v["buildkit"]["host"], host);
}
