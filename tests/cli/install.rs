//! install.sh into a temp prefix: what it installs, that the units verify, that it is
//! idempotent and keeps a config, and that --dry-run and --uninstall do what they say.

use std::path::Path;
use std::process::Command;

fn install(prefix: &Path, args: &[&str], home: &Path) -> std::process::Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh"))
        .arg("--prefix")
        .arg(prefix)
        .arg("--no-build")
        .args(args)
        .env("CACHEKEEPER_BIN", env!("CARGO_BIN_EXE_cachekeeper"))
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .output()
        .unwrap()
}

/// `systemd-analyze verify`, which must accept the unit without a single warning.
fn verify(unit: &Path, user: bool) {
    let Ok(out) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("no systemd-analyze: unit not verified");
        return;
    };
    assert!(out.status.success());
    let rt = crate::suite::tempdir();
    let mut c = Command::new("systemd-analyze");
    if user {
        c.arg("--user").env("XDG_RUNTIME_DIR", rt.path());
    }
    let out = c.arg("verify").arg(unit).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.trim().is_empty(),
        "{}: {text}",
        unit.display()
    );
}

#[test]
fn installs_into_a_prefix_idempotently_and_uninstalls() {
    let tmp = crate::suite::tempdir();
    let prefix = tmp.path().join("prefix");
    let home = tmp.path().join("home");

    // A dry run installs nothing.
    let out = install(&prefix, &["--dry-run"], &home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("+ install -m 0755"), "{said}");
    assert!(
        said.contains("Would have installed") && !said.contains("\nInstalled"),
        "{said}"
    );
    assert!(!prefix.exists());

    let out = install(&prefix, &[], &home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = prefix.join("bin/cachekeeper");
    let config = prefix.join("etc/cachekeeper/config.toml");
    let unit = prefix.join("lib/systemd/system/cachekeeper.service");
    let version = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("cachekeeper "));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        include_str!("../../config/cachekeeper.toml")
    );
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains(&format!(
            "ExecStart={} --config {} daemon",
            bin.display(),
            config.display()
        )),
        "{unit_text}"
    );
    assert!(unit_text.contains("Type=notify") && unit_text.contains("IOSchedulingClass=idle"));
    // The README the unit points to is installed.
    let readme = prefix.join("share/doc/cachekeeper/README.md");
    assert!(
        unit_text.contains(&format!("Documentation=file://{}", readme.display())),
        "{unit_text}"
    );
    assert!(readme.is_file());
    verify(&unit, false);
    // The installed binary reads the config install.sh wrote, with no --config: the CLI and
    // the unit agree.
    let check = Command::new(&bin)
        .arg("check-config")
        .env_remove("CACHEKEEPER_CONFIG")
        .env("XDG_CONFIG_HOME", tmp.path().join("no-xdg"))
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains(&format!("ok: {} is valid", config.display())),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // Again, with the config edited: the config stays, the binary is replaced.
    std::fs::write(&config, "[cargo]\nstale-after = \"60d\"\n").unwrap();
    std::fs::write(&bin, "stale binary").unwrap();
    let out = install(&prefix, &[], &home);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("exists: kept"));
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "[cargo]\nstale-after = \"60d\"\n"
    );
    assert!(
        Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap()
            .status
            .success()
    );

    // Completions for each shell and a man page per command, where they look below a prefix.
    let completions = [
        (
            "bash",
            prefix.join("share/bash-completion/completions/cachekeeper"),
        ),
        ("zsh", prefix.join("share/zsh/site-functions/_cachekeeper")),
        (
            "fish",
            prefix.join("share/fish/vendor_completions.d/cachekeeper.fish"),
        ),
    ];
    for (shell, file) in &completions {
        assert!(
            file.is_file(),
            "no {shell} completion at {}",
            file.display()
        );
        parses(shell, file);
    }
    let man = prefix.join("share/man/man1");
    for page in [
        "cachekeeper.1",
        "cachekeeper-clean.1",
        "cachekeeper-guard.1",
    ] {
        renders(&man.join(page));
    }

    let out = install(&prefix, &["--uninstall", "--dry-run"], &home);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Would have uninstalled") && bin.exists(),
        "{said}"
    );
    let out = install(&prefix, &["--uninstall"], &home);
    assert!(out.status.success());
    assert!(!bin.exists() && !unit.exists() && !readme.exists());
    assert!(completions.iter().all(|(_, f)| !f.exists()));
    assert_eq!(
        std::fs::read_dir(&man).unwrap().count(),
        0,
        "man pages left"
    );
    assert!(config.exists(), "uninstall keeps the config");
}

/// A completion script the shell accepts (bash -n, zsh -n, fish --no-execute), where the shell
/// is installed (.ci/run installs all three).
fn parses(shell: &str, file: &Path) {
    let Some(program) = crate::support::tool(shell) else {
        return;
    };
    let check = if shell == "fish" {
        "--no-execute"
    } else {
        "-n"
    };
    let out = Command::new(program).arg(check).arg(file).output().unwrap();
    assert!(
        out.status.success(),
        "{shell} rejects {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A man page `man -l` renders without a warning, naming its command.
fn renders(page: &Path) {
    let Some(man) = crate::support::tool("man") else {
        return;
    };
    let out = Command::new(man)
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "100")
        .env("MAN_KEEP_STDERR", "1")
        .env("PAGER", "cat")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let name = page.file_stem().unwrap().to_string_lossy();
    assert!(
        out.status.success() && out.stderr.is_empty() && text.contains(name.as_ref()),
        "{}: {}{text}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_timer_install_runs_cleans_without_a_daemon_and_a_daemon_install_replaces_it() {
    let tmp = crate::suite::tempdir();
    let prefix = tmp.path().join("prefix");
    let home = tmp.path().join("home");
    let out = install(&prefix, &["--timer"], &home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let units = prefix.join("lib/systemd/system");
    let service = units.join("cachekeeper-clean.service");
    let timer = units.join("cachekeeper-clean.timer");
    let text = std::fs::read_to_string(&service).unwrap();
    assert!(
        text.contains(&format!(
            "ExecStart={} --config {} clean --quiet",
            prefix.join("bin/cachekeeper").display(),
            prefix.join("etc/cachekeeper/config.toml").display()
        )) && text.contains("Type=oneshot"),
        "{text}"
    );
    assert!(
        !units.join("cachekeeper.service").exists(),
        "no daemon with --timer"
    );
    let timer_text = std::fs::read_to_string(&timer).unwrap();
    assert!(timer_text.contains("OnCalendar=") && timer_text.contains("Persistent=true"));
    verify(&service, false);
    verify(&timer, false);

    // The daemon instead: the timer goes.
    let out = install(&prefix, &[], &home);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(units.join("cachekeeper.service").exists());
    assert!(!service.exists() && !timer.exists());
}

#[test]
fn a_user_install_gets_the_user_unit() {
    let tmp = crate::suite::tempdir();
    let prefix = tmp.path().join("prefix");
    let out = install(&prefix, &["--user"], tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit = prefix.join("lib/systemd/user/cachekeeper.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("WantedBy=default.target"), "{text}");
    verify(&unit, true);
}

#[test]
fn the_units_in_the_repo_verify_as_shipped() {
    // As shipped they name /usr/local/bin and ~/.local/bin; point them at the built binary.
    let tmp = crate::suite::tempdir();
    for (name, from, user) in [
        ("cachekeeper.service", "/usr/local/bin/cachekeeper", false),
        (
            "cachekeeper-user.service",
            "%h/.local/bin/cachekeeper",
            true,
        ),
        (
            "cachekeeper-clean.service",
            "/usr/local/bin/cachekeeper",
            false,
        ),
        (
            "cachekeeper-clean-user.service",
            "%h/.local/bin/cachekeeper",
            true,
        ),
    ] {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("systemd")
                .join(name),
        )
        .unwrap();
        let command = if name.contains("clean") {
            "clean --quiet"
        } else {
            "daemon"
        };
        assert!(
            text.contains(&format!("ExecStart={from} {command}")),
            "{name}"
        );
        let unit = tmp.path().join(name);
        std::fs::write(&unit, text.replace(from, env!("CARGO_BIN_EXE_cachekeeper"))).unwrap();
        verify(&unit, user);
    }
}

/// The textfile path the README and the default config suggest.
fn documented_textfiles() -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for doc in ["README.md", "config/cachekeeper.toml"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            if let Some(rest) = line.strip_prefix("textfile = \"") {
                found.push(std::path::PathBuf::from(rest.split('"').next().unwrap()));
            }
        }
    }
    assert!(
        found.len() >= 2,
        "README and config name a textfile: {found:?}"
    );
    found
}

/// A unit's `[Service]` sandbox settings, as `systemd-run -p` takes them.
fn sandbox_of(unit: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| {
            [
                "Protect",
                "ReadWritePaths",
                "Private",
                "NoNewPrivileges",
                "CapabilityBoundingSet",
                "Restrict",
                "LockPersonality",
                "MemoryDenyWriteExecute",
                "SystemCallArchitectures",
            ]
            .iter()
            .any(|k| l.starts_with(k))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_documented_textfile_is_writable_inside_the_shipped_sandbox() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in ["cachekeeper.service", "cachekeeper-clean.service"] {
        let unit = std::fs::read_to_string(root.join("systemd").join(name)).unwrap();
        let writable: Vec<std::path::PathBuf> = unit
            .lines()
            .filter_map(|l| l.strip_prefix("ReadWritePaths="))
            .flat_map(str::split_whitespace)
            .map(|p| std::path::PathBuf::from(p.trim_start_matches(['-', '+'])))
            .collect();
        for file in documented_textfiles() {
            assert!(
                writable
                    .iter()
                    .any(|w| file.parent().unwrap().starts_with(w)),
                "{name}: {} is outside ReadWritePaths {writable:?}",
                file.display()
            );
        }
    }

    // Where systemd runs (and we may start units), a real run inside the daemon's sandbox
    // writes a textfile in that dir. This test's file has a name of its own.
    let systemd = Path::new("/run/systemd/system").is_dir();
    if !systemd || !rustix::process::geteuid().is_root() {
        eprintln!("systemd is not running here (or not as root): sandbox run skipped");
        return;
    }
    let file = documented_textfiles()[0]
        .with_file_name(format!("cachekeeper-test-{}.prom", std::process::id()));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let tmp = crate::suite::tempdir();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[cargo]\nroots = [\"{}\"]\n[buildkit]\nenabled = false\n[daemon]\nstate-dir = \"{}\"\n[metrics]\ntextfile = \"{}\"\n",
            tmp.path().display(),
            tmp.path().join("state").display(),
            file.display()
        ),
    )
    .unwrap();
    let unit = std::fs::read_to_string(root.join("systemd/cachekeeper-clean.service")).unwrap();
    let mut run = Command::new("systemd-run");
    run.args(["--wait", "--collect", "--quiet", "--pipe"]);
    for p in sandbox_of(&unit) {
        run.arg("-p").arg(p);
    }
    let out = run
        .arg(env!("CARGO_BIN_EXE_cachekeeper"))
        .arg("--config")
        .arg(&config)
        .args(["clean", "--quiet"])
        .output()
        .unwrap();
    let written = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(written.unwrap().contains("cachekeeper_runs_total"));
}
