//! Named failpoints for crash tests and the demo: when
//! `PAYLEDGER_FAILPOINTS` names one (comma-separated), reaching it kills this
//! process with SIGKILL — no destructors, no graceful anything, exactly like
//! a power cut at that line.

/// Every failpoint, so tests and docs can list them.
pub const ALL: &[&str] = &[
    "webhook.before_append",
    "webhook.after_append",
    "checkout.before_record",
    "checkout.after_record",
    "checkout.after_processor",
    "sender.after_smtp",
    "sender.before_send",
    "reconcile.before_append",
    "reconcile.after_page",
    "rescue.before_match",
    "return.before_record",
    "status.before_record",
    "alerts.after_delivery",
];

/// The armed failpoints, read once: the setting belongs to the process's
/// start, and `hit` sits on the webhook's path.
fn armed() -> &'static [String] {
    static ARMED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    ARMED.get_or_init(|| {
        crate::config::var("PAYLEDGER_FAILPOINTS")
            .map(|list| list.split(',').map(|f| f.trim().to_string()).collect())
            .unwrap_or_default()
    })
}

pub fn hit(name: &str) {
    if armed().iter().any(|f| f == name) {
        tracing::error!(failpoint = name, "failpoint reached: SIGKILL");
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status();
        // `kill` missing: still never go on past a failpoint.
        std::process::abort();
    }
}
