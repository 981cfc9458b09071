//! What is valid in a config but probably not meant: said by `check-config` and the daemon.

use super::Config;

/// What is valid but probably not meant.
pub(super) fn of(config: &Config) -> Vec<String> {
    let mut w = Vec::new();
    let roots = &config.cargo.roots;
    if roots.is_empty() {
        w.push(
            "[cargo] roots is empty: no target dir will be found (only the BuildKit side works)"
                .to_string(),
        );
    }
    if roots.iter().any(|r| r.parent().is_none()) {
        w.push(
            "[cargo] roots contains \"/\": every directory of the machine is searched on every scan; name the directories that hold your projects".to_string(),
        );
    }
    if let Some(addr) = config.metrics.listen
        && !addr.ip().is_loopback()
    {
        w.push(format!(
            "[metrics] listen = \"{addr}\" is not loopback: anyone who can reach this host on that port reads the metrics{} (firewall it, or listen on 127.0.0.1)",
            if config.metrics.paths {
                ", project paths included (set [metrics] paths = false to label by hash)"
            } else {
                ""
            }
        ));
    }
    w
}
