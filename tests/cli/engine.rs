//! A Docker engine of the tests' own: a `dockerd` with its own data root, socket and
//! `daemon.json`, and no bridge network, so tests never touch the records of an engine a
//! developer uses. It lives in the suite's dir (see [`crate::suite`]), so it is stopped and its
//! data root and mounts removed however the test process ends. It needs root and `dockerd`
//! (Debian's `docker.io`; `.ci/setup` installs it): without them, [`shared`] fails the test
//! naming what is missing (or returns `None` where skipping is asked for).
//!
//! Every fixture's config points cachekeeper at it (see `Fixture::config_with`), so the CLI,
//! the daemon and the guard run with their BuildKit side on, as users run them. Tests that
//! create, prune or count records, or that may prune by budget (the guard on a short disk),
//! take their turn with [`engine`]; the others only list it (the default budgets and ages
//! never prune the young, small records the tests make).

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
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
    crate::suite::program("openssl")?;
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
    if !crate::suite::root("to start the tests' own dockerd") {
        return None;
    }
    crate::suite::program("dockerd")?;
    crate::suite::program("/usr/bin/docker")?;
    // In the suite's dir, so the reaper stops it and removes its data root and mounts however
    // the test process ends.
    let dir = crate::suite::dir().join("dockerd");
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    // Its own daemon.json: the machine's /etc/docker/daemon.json is not ours to obey. BuildKit's
    // own garbage collection is off, so records go only when a test prunes them.
    std::fs::write(
        dir.join("daemon.json"),
        r#"{"builder": {"gc": {"enabled": false}}}"#,
    )
    .unwrap();
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
        if let Ok(c) = &child {
            crate::suite::adopt(c);
        }
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
        // A build a test cancelled may hold its records a moment longer: each test starts from
        // an empty cache, so wait for it (bounded).
        let t = Instant::now();
        loop {
            self.ok(&["builder", "prune", "-af"]);
            let left = self.docker_df();
            if left.is_empty() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "the engine keeps build records a test left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Builds `dockerfile` with a context holding `files`; returns the image id.
    pub fn build(&self, dockerfile: &str, files: &[(&str, usize)]) -> String {
        let ctx = crate::suite::tempdir();
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

    /// An image with a shell, for `RUN` steps: this machine's `sh`, `dd` and `sleep` with the
    /// shared libraries they load (nothing can be pulled, and no static shell is needed).
    /// Imported rather than built, so it adds no build cache records of its own.
    pub fn shell_image(&self) -> &'static str {
        let dir = crate::suite::tempdir();
        let root = dir.path().join("root");
        for program in ["/bin/sh", "/bin/dd", "/bin/sleep"] {
            place(&root, Path::new(program));
            for lib in libraries(program) {
                place(&root, &lib);
            }
        }
        let tar = dir.path().join("rootfs.tar");
        assert!(
            Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg(".")
                .status()
                .unwrap()
                .success()
        );
        self.ok(&["import", tar.to_str().unwrap(), "ck-shell:test"]);
        "ck-shell:test"
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
    /// Engine 20.10 sizes one disk usage at a time and fails a concurrent one (other tests'
    /// cachekeeper lists it at any time): asked again, as cachekeeper does.
    pub fn docker_df(&self) -> Vec<(String, String, String, bool)> {
        let mut tries = 0;
        let text = loop {
            let out = self.docker(&["system", "df", "-v"]);
            let err = String::from_utf8_lossy(&out.stderr);
            tries += 1;
            if out.status.success() {
                break String::from_utf8_lossy(&out.stdout).into_owned();
            }
            assert!(
                tries < 50 && err.contains("a disk usage operation is already running"),
                "docker system df -v: {err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
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

/// The shared libraries `bin` loads, as absolute paths (ldd's view).
pub fn libraries(bin: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Copies `from` to `root` + its own absolute path (following symlinks, as the loader does).
pub fn place(root: &Path, from: &Path) {
    let to = root.join(from.strip_prefix("/").unwrap());
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A fake engine on a unix socket, for faults a real one will not produce on demand.
pub struct FakeEngine {
    pub _dir: tempfile::TempDir,
    pub socket: PathBuf,
}

impl FakeEngine {
    /// `answer`: None to accept and never answer, Some((status line, JSON body)) to send to
    /// every request.
    pub fn new(answer: Option<(&'static str, &'static str)>) -> FakeEngine {
        let dir = crate::suite::tempdir();
        let socket = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                match answer {
                    None => held.push(conn),
                    Some((status, body)) => {
                        let mut buf = [0u8; 4096];
                        let _ = conn.read(&mut buf);
                        let text = format!(
                            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = conn.write_all(text.as_bytes());
                    }
                }
            }
        });
        FakeEngine { _dir: dir, socket }
    }

    pub fn config(&self) -> String {
        format!(
            "[buildkit]\ndocker-host = \"unix://{}\"\ntimeout = \"1s\"\n",
            self.socket.display()
        )
    }
}
