//! The product's own application in the demo (spec §13): a tiny receiver
//! that verifies and prints every message payledger sends it, and step 6,
//! where customers leave and the application is told that too.

use super::stage::Stage;
use crate::tooling::app_receiver::AppReceiver;
use payledger::clock::SystemClock;
use payledger::reactors::app_webhooks::endpoints;
use payledger::store::PgEventStore;
use std::sync::Arc;

/// Starts the receiver and records its endpoint before `run` starts, so the
/// first purchase is told too; `run` is given the same URL and secret
/// (PAYLEDGER_APP_WEBHOOK_URL / _SECRET) and finds the endpoint there.
pub async fn connect(s: &mut Stage) -> anyhow::Result<AppReceiver> {
    let receiver = AppReceiver::start(!s.quiet).await?;
    let store = PgEventStore::new(s.db.pool.clone(), Arc::new(SystemClock));
    endpoints::ensure_configured(&store, &receiver.url, &receiver.secret).await?;
    println!(
        "the product's application listens at {} (every message verified with its whsec_ secret)",
        receiver.url
    );
    s.app_webhook = Some((receiver.url.clone(), receiver.secret.clone()));
    Ok(receiver)
}

/// Checks that the application was told `message_type` about `email`.
pub async fn check_told(s: &mut Stage, app: &AppReceiver, message_type: &str, email: &str) {
    let told = app.wait_told(message_type, email, 30).await;
    s.check(
        told,
        &format!("the application was told {message_type} for {email}, signed and verified"),
    );
}

/// Step 6: one customer cancels at the end of the paid year, another is
/// cancelled at once by support; the application hears both.
pub async fn leaving(s: &mut Stage, app: &AppReceiver, ann: &str, dee: &str) -> anyhow::Result<()> {
    s.step(
        6,
        "Leaving: the application is told when access will end, and when it has",
    );
    let out = s
        .cli(&["support", "cancel", ann, "--as", "demo", "--yes"])
        .await;
    s.check(
        out.contains("done:"),
        &format!("support cancel {ann}: cancelled at the end of the paid period"),
    );
    check_told(s, app, "subscription.canceled", ann).await;
    let (status, _) = s.access_of(ann).await?;
    s.check(
        status == "canceled",
        &format!("{ann} keeps access until the end of what she paid for ({status})"),
    );
    let out = s
        .cli(&["support", "cancel", dee, "--now", "--as", "demo", "--yes"])
        .await;
    s.check(
        out.contains("done:"),
        &format!("support cancel {dee} --now"),
    );
    check_told(s, app, "subscription.ended", dee).await;
    let told = app.told();
    let unverified = told.iter().filter(|t| !t.verified).count();
    s.check(
        unverified == 0 && !told.is_empty(),
        &format!(
            "the application verified all {} messages it was sent",
            told.len()
        ),
    );
    let mut versions: std::collections::HashMap<&str, i64> = Default::default();
    let in_order = told.iter().all(|t| {
        let last = versions.insert(&t.email, t.version);
        last.is_none_or(|v| v < t.version)
    });
    s.check(
        in_order,
        "each customer's messages arrived in order (version always rising)",
    );
    Ok(())
}
