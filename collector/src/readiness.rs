//! Telling systemd how the start goes (`Type=notify`): a status line while the indicator
//! sources load (seconds with the full trails and warninglists), `READY=1` once the listeners
//! are bound, `STOPPING=1` on the way out. Outside systemd (`$NOTIFY_SOCKET` unset) every call
//! does nothing.
//!
//! Why not `ExecStartPre=check-config` with `Type=simple`: the check built the whole indicator
//! set a second time, and "started" then only meant "forked". With `Type=notify` the unit is
//! active exactly when agents can connect, and a bad configuration still fails the start,
//! with the same message `check-config` prints.

use sd_notify::NotifyState;

/// What the service is doing, shown by `systemctl status`.
pub fn status(text: &str) {
    notify(&[NotifyState::Status(text)]);
}

/// The collector serves: systemd may start what depends on it.
pub fn ready(text: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(text)]);
}

pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}
