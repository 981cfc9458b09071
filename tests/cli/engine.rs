//! A Docker engine of the tests' own: a `dockerd` with its own data root, socket and
//! `daemon.json`, and no bridge network, so tests never touch the records of an engine a
//! developer uses. It needs root and `dockerd` (Debian's `docker.io`; `.ci/run` installs it).
//! Without them, [`shared`] says so and returns `None`.
//!
//! Every fixture's config points cachekeeper at it (see `Fixture::config_with`), so the CLI,
//! the daemon and the guard run with their BuildKit side on, as users run them. Tests that
//! create, prune or count records, or that may prune by budget (the guard on a short disk),
//! take their turn with [`engine`]; the others only list it (the default budgets and ages
//! never prune the young, small records the tests make).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::support::Fixture;

/// The engine of this test process, started on first use.
pub fn shared() -> Option<&'static TestEngine> {
    static ENGINE: OnceLock<Option<TestEngine>> = OnceLock::new();
    ENGINE.get_or_init(start_engine).as_ref()
}

/// A dockerd of the tests' own.
pub struct TestEngine {
    pub socket: PathBuf,
    /// Its TLS listener (`tcp://127.0.0.1:PORT`, client certificates required), and the dir
    /// holding `ca.pem`, `cert.pem` and `key.pem` for a client, as `$DOCKER_CERT_PATH` wants.
    pub tls: Option<(u16, PathBuf)>,
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl in
/// `dir`; the client's files are in `dir/client`.
fn certificates(dir: &Path) -> Option<PathBuf> {
    let openssl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let signed = |name: &str, cn: &str, ext: &str| {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]) && openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-out",
            &format!("{name}-cert.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ])
    };
    let ok = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cachekeeper test CA",
    ]) && signed(
        "server",
        "127.0.0.1",
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    ) && signed("client", "client", "extendedKeyUsage=clientAuth\n");
    if !ok {
        eprintln!("note: openssl could not make certificates: the engine gets no TLS listener");
        return None;
    }
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("client-cert.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ] {
        std::fs::copy(dir.join(from), client.join(to)).unwrap();
    }
    Some(client)
}

/// The engine, exclusively: tests that change or count records take turns (each starts from an
/// empty cache).
pub fn engine() -> Option<(&'static TestEngine, MutexGuard<'static, ()>)> {
    static TURN: Mutex<()> = Mutex::new(());
    let e = shared()?;
    let turn = TURN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    e.prune_everything();
    Some((e, turn))
}

fn start_engine() -> Option<TestEngine> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the BuildKit tests start their own dockerd, which needs root");
        return None;
    }
    if Command::new("dockerd").arg("--version").output().is_err()
        || !Path::new("/usr/bin/docker").exists()
    {
        eprintln!(
            "skipped: no dockerd and /usr/bin/docker (Debian's docker.io); .ci/run installs them"
        );
        return None;
    }
    let dir = PathBuf::from(format!("/tmp/ck-test-dockerd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    // Its own (empty) daemon.json: the machine's /etc/docker/daemon.json is not ours to obey.
    std::fs::write(dir.join("daemon.json"), "{}").unwrap();
    let mut cmd = Command::new("dockerd");
    cmd.arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg("--data-root")
        .arg(dir.join("root"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(["--bridge=none", "--iptables=false", "--ip6tables=false"]);
    let tls = certificates(&dir).map(|client| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        cmd.arg("-H")
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(dir.join("ca.pem"))
            .arg("--tlscert")
            .arg(dir.join("server-cert.pem"))
            .arg("--tlskey")
            .arg(dir.join("server-key.pem"));
        (port, client)
    });
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // The engine goes when the test process does. The kernel sends the signal when the
    // spawning *thread* ends, so spawn it from one that never does.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::TERM,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn();
        let ok = child.is_ok();
        tx.send(child.map(|_| ())).unwrap();
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().unwrap().expect("dockerd starts");
    let e = TestEngine { socket, tls };
    let t = Instant::now();
    while !e.docker(&["info"]).status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "test dockerd did not come up: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    Some(e)
}

impl TestEngine {
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("/usr/bin/docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_BUILDKIT", "1")
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn prune_everything(&self) {
        // A container a failed test left behind holds its image.
        for container in self.ok(&["ps", "-aq"]).split_whitespace() {
            self.ok(&["rm", "-f", container]);
        }
        for image in self.ok(&["images", "-aq"]).split_whitespace() {
            self.ok(&["rmi", "-f", image]);
        }
        self.ok(&["builder", "prune", "-af"]);
    }

    /// Builds `dockerfile` with a context holding `files`; returns the image id.
    pub fn build(&self, dockerfile: &str, files: &[(&str, usize)]) -> String {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        for (name, kib) in files {
            // Distinct content every time, so no two builds share a layer.
            let mut data = vec![0u8; kib * 1024];
            let seed = format!("{name}{:?}", Instant::now());
            for (i, b) in data.iter_mut().enumerate() {
                *b = seed.as_bytes()[i % seed.len()].wrapping_add((i / 7) as u8);
            }
            std::fs::write(ctx.path().join(name), data).unwrap();
        }
        let iid = ctx.path().join("iid");
        self.ok(&[
            "build",
            "--network=host",
            "--iidfile",
            iid.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
        ]);
        std::fs::read_to_string(iid).unwrap().trim().to_string()
    }

    /// A layer of `kib` KiB whose records are no longer shared with any image.
    pub fn unshared_layer(&self, name: &str, kib: usize) {
        let image = self.build(
            &format!("FROM scratch\nCOPY {name} /{name}\n"),
            &[(name, kib)],
        );
        self.ok(&["rmi", &image]);
    }

    /// An image with a shell, for `RUN` steps.
    pub fn busybox(&self) -> &'static str {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root/bin")).unwrap();
        std::fs::copy("/bin/busybox", dir.path().join("root/bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", dir.path().join("root/bin/sh")).unwrap();
        let tar = dir.path().join("rootfs.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(dir.path().join("root"))
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        self.ok(&["import", tar.to_str().unwrap(), "ck-busybox:test"]);
        "ck-busybox:test"
    }

    pub fn bk_config(&self, extra: &str) -> String {
        format!(
            "[buildkit]\ndocker-host = \"{}\"\nmin-age = \"0s\"\n{extra}",
            self.host()
        )
    }

    /// A fixture whose config points cachekeeper at this engine, with `extra` `[buildkit]` keys.
    pub fn fixture(&self, extra: &str) -> Fixture {
        let f = Fixture::new();
        f.config_with("", &self.bk_config(extra));
        f
    }

    /// The build cache as `docker system df -v` shows it: (id prefix, type, size, shared).
    pub fn docker_df(&self) -> Vec<(String, String, String, bool)> {
        let text = self.ok(&["system", "df", "-v"]);
        let mut rows = Vec::new();
        let mut in_table = false;
        for line in text.lines() {
            if line.starts_with("CACHE ID") {
                in_table = true;
                continue;
            }
            if !in_table || line.trim().is_empty() {
                continue;
            }
            let cols: Vec<&str> = line
                .split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            // A trailing `*` marks a record in use at that moment; sizes being computed hold
            // records briefly, so that flag is not compared.
            rows.push((
                cols[0].trim_end_matches('*').to_string(),
                cols[1].to_string(),
                cols[2].to_string(),
                cols[cols.len() - 1] == "true",
            ));
        }
        rows.sort();
        rows
    }
}
