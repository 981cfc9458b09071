//! Metrics as a fleet meets them: the daemon on its defaults (BuildKit on) with `[metrics]`
//! set, scraped over HTTP, linted by `promtool`, stored by a real Prometheus, and written to
//! a textfile for node_exporter.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::running::{Daemon, daemon_section};
use crate::support::{DAY, Fixture, fingerprint_dirs, tool};

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET (no chunking): the status code, the headers, the body.
pub fn get(port: u16, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

/// The value of the sample written exactly `name{labels}` (or `name`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Every sample of `name` (any labels), summed.
fn sum_of(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// A built workspace two months old whose dependency lost its fingerprint: its outputs are
/// orphans, the one thing a run removes (stale-after is far away).
fn orphaned(f: &Fixture) {
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let lib = fingerprint_dirs(&f.target(), "debug")
        .into_iter()
        .find(|d| d.starts_with("dep-"))
        .unwrap();
    std::fs::remove_dir_all(f.target().join("debug/.fingerprint").join(lib)).unwrap();
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Debian's prometheus, scraping each job's port every second, on a loopback port of its
    /// own.
    fn start(bin: &Path, jobs: &[(&str, u16)]) -> Prometheus {
        let dir = crate::suite::tempdir();
        let config = dir.path().join("prometheus.yml");
        let mut yml =
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n".to_string();
        for (job, port) in jobs {
            yml += &format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            );
        }
        std::fs::write(&config, yml).unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        crate::suite::adopt(&child);
        let p = Prometheus {
            child,
            port,
            _dir: dir,
        };
        p.wait_for("ready", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok() && get(port, "/-/ready", None).0 == 200
        });
        p
    }

    fn wait_for(&self, what: &str, ok: impl Fn() -> bool) {
        let t = Instant::now();
        while !ok() {
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "Prometheus: timed out waiting for {what}: {}",
                std::fs::read_to_string(self._dir.path().join("prometheus.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The value of an instant PromQL query with one result, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (code, _, body) = get(self.port, &format!("/api/v1/query?query={encoded}"), None);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_real_prometheus_scrapes_what_history_reports() {
    let f = Fixture::new();
    orphaned(&f);
    let port = free_port();
    let textfile = f.dir.path().join("textfile/cachekeeper.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    f.config_with(
        "stale-after = \"1000d\"",
        &format!(
            "{}[metrics]\nlisten = \"{port}\"\ntextfile = \"{}\"\n",
            daemon_section(&f, ""),
            textfile.display()
        ),
    );
    let d = Daemon::start(&f);

    // Served on loopback, in Prometheus text unless OpenMetrics is asked for.
    let (code, head, text) = get(port, "/metrics", None);
    assert_eq!(code, 200, "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert_eq!(
        sample(&text, "cachekeeper_target_dirs"),
        Some(1.0),
        "{text}"
    );
    // Every counter is there at 0 before the first run, so increase() counts that run.
    for series in [
        "cachekeeper_runs_total{trigger=\"manual\",outcome=\"success\"}",
        "cachekeeper_runs_total{trigger=\"schedule\",outcome=\"failure\"}",
        "cachekeeper_reclaimed_bytes_total{cache=\"cargo\",rule=\"orphaned\",trigger=\"manual\"}",
        "cachekeeper_reclaimed_bytes_total{cache=\"buildkit\",rule=\"keep-duration\",trigger=\"pressure\"}",
        "cachekeeper_errors_total{kind=\"remove\"}",
    ] {
        assert_eq!(sample(&text, series), Some(0.0), "{series}\n{text}");
    }
    // The filesystem gauges carry the labels df (and node_exporter) name the mount by.
    let df = Command::new("df")
        .args(["--output=source,fstype,target"])
        .arg(f.target())
        .output()
        .unwrap();
    let df = String::from_utf8(df.stdout).unwrap();
    let fields: Vec<&str> = df.lines().nth(1).unwrap().split_whitespace().collect();
    let [device, fstype, mountpoint] = fields[..] else {
        panic!("df: {df}")
    };
    let labels = format!("{{device=\"{device}\",fstype=\"{fstype}\",mountpoint=\"{mountpoint}\"}}");
    for name in [
        "cachekeeper_filesystem_avail_bytes",
        "cachekeeper_filesystem_free_bytes",
        "cachekeeper_filesystem_size_bytes",
    ] {
        assert!(
            sample(&text, &format!("{name}{labels}")).is_some_and(|b| b > 0.0),
            "{name}{labels}\n{text}"
        );
    }
    assert!(
        sample(&text, &format!("cachekeeper_filesystem_free_bytes{labels}"))
            >= sample(
                &text,
                &format!("cachekeeper_filesystem_avail_bytes{labels}")
            ),
        "free counts root's reserve too"
    );
    let target = f.target().display().to_string();
    let used = sample(
        &text,
        &format!(
            "cachekeeper_target_dir_used_bytes{{path=\"{target}\",mountpoint=\"{mountpoint}\"}}"
        ),
    );
    let status = d.json(&["status"]);
    #[allow(clippy::cast_precision_loss)]
    let expected = status["targets"][0]["bytes"].as_u64().unwrap() as f64;
    assert_eq!(used, Some(expected), "{text}");
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(&text, "process_open_fds").unwrap() > 0.0);
    let (_, head, om) = get(
        port,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(om.ends_with("# EOF\n"));
    assert_eq!(get(port, "/nope", None).0, 404);
    // The daemon says where.
    let human = String::from_utf8_lossy(&d.ck(&["status"]).stdout).into_owned();
    assert!(
        human.contains(&format!("metrics: http://127.0.0.1:{port}/metrics")),
        "{human}"
    );

    // promtool finds nothing to complain about.
    if let Some(promtool) = tool("promtool") {
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && said.trim().is_empty(),
            "promtool: {said}\n{text}"
        );
    }

    // node_exporter beside it, every filesystem type and mount point included (its defaults
    // leave out overlay, a container's root).
    let node = tool("prometheus-node-exporter").map(|bin| NodeExporter::start(&bin));
    let mut jobs = vec![("cachekeeper", port)];
    if let Some(n) = &node {
        jobs.push(("node", n.port));
    }
    let prometheus = tool("prometheus").map(|bin| Prometheus::start(&bin, &jobs));
    if let Some(p) = &prometheus {
        p.wait_for("the first scrapes", || {
            p.query("sum(up)") == Some(jobs.len() as f64)
        });
        // A dashboard's join: our filesystem and node_exporter's are one series apart.
        if node.is_some() {
            p.wait_for("the join with node_exporter", || {
                p.query(
                    "count(cachekeeper_filesystem_size_bytes - on (device, fstype, mountpoint) node_filesystem_size_bytes == 0)",
                ) == Some(1.0)
            });
        }
    }

    // A run removes the orphans; history, the scrape, the textfile and Prometheus agree.
    let run = d.json(&["run-now"]);
    assert!(run["reclaimed_bytes"].as_u64().unwrap() > 0, "{run:#}");
    let history = d.json(&["history"]);
    #[allow(clippy::cast_precision_loss)]
    let reclaimed = history["totals"]["reclaimed_bytes"].as_u64().unwrap() as f64;
    assert!(reclaimed > 0.0);
    let text = get(port, "/metrics", None).2;
    assert_eq!(
        sum_of(&text, "cachekeeper_reclaimed_bytes_total"),
        reclaimed,
        "{text}"
    );
    // The orphans, and the dependency's incremental data that went with them.
    let orphans = sample(
        &text,
        "cachekeeper_reclaimed_bytes_total{cache=\"cargo\",rule=\"orphaned\",trigger=\"manual\"}",
    );
    assert!(orphans.is_some_and(|b| b > 0.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "cachekeeper_runs_total{trigger=\"manual\",outcome=\"success\"}"
        ),
        Some(1.0),
        "{text}"
    );
    let file = std::fs::read_to_string(&textfile).unwrap();
    assert_eq!(
        sum_of(&file, "cachekeeper_reclaimed_bytes_total"),
        reclaimed,
        "{file}"
    );
    assert!(
        !file.contains("process_"),
        "node_exporter has its own process_* families"
    );
    let leftovers: Vec<PathBuf> = std::fs::read_dir(textfile.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != &textfile)
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    if let Some(p) = &prometheus {
        p.wait_for("the run's bytes", || {
            p.query("sum(cachekeeper_reclaimed_bytes_total)") == Some(reclaimed)
        });
        // The first run is an increase, since the series was there at 0 before it.
        p.wait_for("the first run as an increase", || {
            p.query(
                "sum(increase(cachekeeper_runs_total{trigger=\"manual\",outcome=\"success\"}[5m]))",
            )
            .is_some_and(|n| n > 0.0)
        });
    }
}

/// Debian's node_exporter with only its filesystem collector, on a loopback port of its own.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl NodeExporter {
    fn start(bin: &Path) -> NodeExporter {
        let port = free_port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args([
                "--collector.disable-defaults",
                "--collector.filesystem",
                "--collector.filesystem.mount-points-exclude=^$",
                "--collector.filesystem.fs-types-exclude=^$",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        crate::suite::adopt(&child);
        let n = NodeExporter { child, port };
        let t = Instant::now();
        while get_or_none(port).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "node_exporter did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        n
    }
}

fn get_or_none(port: u16) -> Option<()> {
    TcpStream::connect(("127.0.0.1", port)).ok()?;
    (get(port, "/metrics", None).0 == 200).then_some(())
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_metrics_address_in_use_keeps_the_daemon_from_starting() {
    let f = Fixture::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    f.config_with(
        "",
        &format!(
            "{}[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            daemon_section(&f, "")
        ),
    );
    let err = crate::running::daemon_refuses(&f);
    assert!(
        err.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// Hardening issue: 16 idle connections (a slowloris from any local user) held scrapes back for
/// 29 s. Idle connections are dropped once their headers are late, there is room for 64, and
/// scrapes are served beside them.
#[test]
fn idle_connections_never_hold_a_scrape_back() {
    let f = Fixture::new();
    let port = free_port();
    f.config_with(
        "",
        &format!("{}[metrics]\nlisten = \"{port}\"\n", daemon_section(&f, "")),
    );
    let d = Daemon::start(&f);
    let idle: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // A scrape beside them is answered (it used to queue behind the first 16 for 30 s: a
    // generous 10 s to answer fails that).
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body)
        .expect("the scrape is answered beside 40 idle connections");
    assert!(
        body.contains(" 200 OK") && body.contains("cachekeeper_build_info"),
        "{body}"
    );
    // And every idle one is closed by the daemon once its headers are late.
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    assert!(d.log().contains("ready"), "{}", d.log());
}
