//! The deployment files: the Kubernetes manifests against the API's schemas (strictly, with
//! `kubernetes-validate`), and every config they ship through `cachekeeper check-config`, with
//! grace periods above the daemon's stop-timeout.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{ck, tool};

pub fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// The YAML documents of `file`, as JSON (PyYAML comes with kubernetes-validate).
pub fn documents(file: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
        ])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `check-config` on `text`; the stop-timeout it resolves to, in seconds.
fn valid_config(text: &str, what: &str) -> u64 {
    let dir = crate::suite::tempdir();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, text).unwrap();
    let out = ck()
        .arg("check-config")
        .arg(&file)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what}: {}{said}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = said
        .lines()
        .find(|l| l.starts_with("daemon stop-timeout:"))
        .unwrap_or_else(|| panic!("{what}: no stop-timeout in {said}"));
    let secs = line.trim_start_matches("daemon stop-timeout:").trim();
    secs.trim_end_matches('s').parse().unwrap()
}

fn seconds(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str()?.trim_end_matches('s').parse().ok())
        .unwrap()
}

#[test]
fn the_kubernetes_manifests_validate_strictly_and_hold_together() {
    let Some(validate) = tool("kubernetes-validate") else {
        return;
    };
    let manifest = deploy().join("kubernetes/cachekeeper.yaml");
    let out = Command::new(&validate)
        .arg("--strict")
        .arg(&manifest)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !said.contains("WARN"), "{said}");
    for kind in ["namespace", "serviceaccount", "configmap", "daemonset"] {
        assert!(
            said.contains(&format!("passed for resource {kind}/")),
            "{said}"
        );
    }
    // The check is strict: a field the schema does not know fails.
    let dir = crate::suite::tempdir();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &broken,
        text.replace("terminationGracePeriodSeconds:", "terminationGraceSeconds:"),
    )
    .unwrap();
    let out = Command::new(&validate)
        .arg("--strict")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field passed");

    let docs = documents(&manifest);
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap();
    let config = kind("ConfigMap")["data"]["config.toml"].as_str().unwrap();
    let stop_timeout = valid_config(config, "the ConfigMap's config");
    let pod = &kind("DaemonSet")["spec"]["template"];
    let spec = &pod["spec"];
    assert!(seconds(&spec["terminationGracePeriodSeconds"]) > stop_timeout);
    let container = &spec["containers"][0];
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["exec"]["command"],
            serde_json::json!(["cachekeeper", "healthcheck"])
        );
    }
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    // The init step gives the state dir to the user the daemon runs as.
    let init = &spec["initContainers"][0];
    let owner = format!(
        "{}:{}",
        spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]
    );
    assert_eq!(
        init["args"],
        serde_json::json!(["init-state", "--owner", owner])
    );
    assert_eq!(init["image"], container["image"]);
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], "9184");
    assert!(config.contains("listen = \"0.0.0.0:9184\""));
    // Every path the daemon writes is a volume: the root filesystem is read-only.
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for path in [
        "/var/lib/cachekeeper",
        "/run/cachekeeper",
        "/work",
        "/var/run/docker.sock",
    ] {
        assert!(mounts.contains(&path), "{path} is not mounted: {mounts:?}");
    }

    // The PodMonitor (a CRD: no schema to validate against) selects these pods' port.
    let monitor = &documents(&deploy().join("kubernetes/podmonitor.yaml"))[0];
    assert_eq!(
        monitor["spec"]["selector"]["matchLabels"],
        pod["metadata"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["port"],
        container["ports"][0]["name"]
    );
}

#[test]
fn the_shipped_configs_validate_and_compose_waits_longer_than_the_daemon() {
    let read = |p: &str| std::fs::read_to_string(deploy().join(p)).unwrap();
    valid_config(&read("container.toml"), "deploy/container.toml");
    let stop_timeout = valid_config(&read("compose.toml"), "deploy/compose.toml");
    if tool("python3").is_none() {
        return;
    }
    let compose = &documents(&deploy().join("compose.yaml"))[0];
    let service = &compose["services"]["cachekeeper"];
    assert!(seconds(&service["stop_grace_period"]) > stop_timeout);
    assert_eq!(
        service["healthcheck"]["test"],
        serde_json::json!(["CMD", "cachekeeper", "healthcheck"])
    );
    // The Dockerfile stops with SIGTERM and checks health with the binary itself.
    let dockerfile = std::fs::read_to_string(deploy().join("../Dockerfile")).unwrap();
    assert!(dockerfile.contains("STOPSIGNAL SIGTERM"));
    assert!(dockerfile.contains("CMD [\"cachekeeper\", \"healthcheck\"]"));
}
