//! systemd's readiness protocol (`sd_notify`): datagrams to `$NOTIFY_SOCKET`, a path or an
//! abstract socket (`@name`). Without the variable (not under systemd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    target: Option<String>,
    socket: Option<UnixDatagram>,
}

impl Notifier {
    #[must_use]
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty());
        let socket = target.as_ref().and_then(|_| UnixDatagram::unbound().ok());
        Notifier { target, socket }
    }

    /// Sends `state` (`READY=1`, `STATUS=...`, `WATCHDOG=1`, `STOPPING=1`, lines joined by `\n`).
    pub fn notify(&self, state: &str) {
        let (Some(target), Some(socket)) = (&self.target, &self.socket) else {
            return;
        };
        let sent = if let Some(name) = target.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| socket.send_to_addr(state.as_bytes(), &addr))
        } else {
            socket.send_to(state.as_bytes(), target)
        };
        if let Err(e) = sent {
            tracing::debug!("sd_notify to {target}: {e}");
        }
    }

    /// How often to send `WATCHDOG=1`: half the interval systemd set, if it set one for us.
    #[must_use]
    pub fn watchdog_interval() -> Option<Duration> {
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Some(pid) = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            && pid != std::process::id()
        {
            return None;
        }
        Some(Duration::from_micros(usec / 2))
    }
}
