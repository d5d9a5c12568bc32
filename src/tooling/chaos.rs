//! `payledger chaos`: N purchases through the real pages and the simulator
//! with its faults on, while `payledger run` is killed with SIGKILL at random
//! moments and at named failpoints and its database connections are cut;
//! then reconciliation, quiescence, and every guarantee checked.

use crate::tooling::demo::stage::Stage;
use payledger_projections::states::{EmailStatus, PaymentState, SubscriptionStatus};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Debug, Serialize)]
pub struct ChaosReport {
    pub purchases: usize,
    pub kills: u32,
    pub failpoint_kills: u32,
    pub connection_cuts: u32,
    pub faults_injected: u32,
    pub charges_at_processor: i64,
    pub charge_succeeded_events: i64,
    /// Distinct payments the ledger holds (charges and paid invoices): must
    /// equal the processor's charges.
    pub payments_recorded: i64,
    pub active_subscriptions: i64,
    /// A year later (spec §12): renewals the processor charged, and the
    /// `InvoicePaid` facts for them.
    pub renewals_at_processor: i64,
    pub renewals_recorded: i64,
    /// Customers whose card declined every retry: their plans ended.
    pub ended_subscriptions: i64,
    /// Failed attempts at the processor, those whose webhook reached the
    /// ledger (a dropped one is not re-learnt: an invoice shows only its
    /// latest attempt), and dunning emails asked for.
    pub failed_attempts_at_processor: i64,
    pub failed_attempts_recorded: i64,
    pub dunning_emails: i64,
    pub emails_delivered: usize,
    pub duplicate_emails: usize,
    pub violations: Vec<String>,
}

impl ChaosReport {
    pub fn print(&self) {
        let rows: [(&str, String); 18] = [
            ("purchases", self.purchases.to_string()),
            ("kills (SIGKILL)", self.kills.to_string()),
            ("  of which at failpoints", self.failpoint_kills.to_string()),
            ("database connection cuts", self.connection_cuts.to_string()),
            (
                "processor faults switched on",
                self.faults_injected.to_string(),
            ),
            (
                "charges at the processor",
                self.charges_at_processor.to_string(),
            ),
            (
                "ChargeSucceeded events",
                self.charge_succeeded_events.to_string(),
            ),
            (
                "active subscriptions",
                self.active_subscriptions.to_string(),
            ),
            (
                "failed attempts recorded",
                self.failed_attempts_recorded.to_string(),
            ),
            ("payments recorded", self.payments_recorded.to_string()),
            (
                "renewals at the processor",
                self.renewals_at_processor.to_string(),
            ),
            ("renewals recorded", self.renewals_recorded.to_string()),
            ("ended subscriptions", self.ended_subscriptions.to_string()),
            (
                "failed attempts at processor",
                self.failed_attempts_at_processor.to_string(),
            ),
            ("dunning emails", self.dunning_emails.to_string()),
            ("emails delivered", self.emails_delivered.to_string()),
            ("duplicate emails", self.duplicate_emails.to_string()),
            ("violations", self.violations.len().to_string()),
        ];
        for (k, v) in rows {
            println!("{k:<30} {v:>8}");
        }
        for v in &self.violations {
            println!("VIOLATION: {v}");
        }
    }
}

/// Starts the server with `failpoint` armed; a failpoint that fires while
/// it starts (a due email, say) is a kill too, and it starts again unarmed.
async fn restart(
    s: &mut Stage,
    failpoint: Option<&'static str>,
    kills: &mut u32,
    failpoint_kills: &mut u32,
) -> anyhow::Result<bool> {
    if s.start_server(failpoint).await.is_ok() {
        return Ok(failpoint.is_some());
    }
    *kills += 1;
    *failpoint_kills += 1;
    s.start_server(None).await?;
    Ok(false)
}

/// The processor's clock moves a year in small steps across every renewal
/// (and then the retries), switching faults and killing `run` between the
/// steps as during the purchases. Returns how many customers' cards were
/// set to decline.
async fn a_year_of_renewals(
    s: &mut Stage,
    rng: &mut rand_chacha::ChaCha8Rng,
    customers: usize,
    kills: &mut u32,
    failpoint_kills: &mut u32,
) -> anyhow::Result<usize> {
    let mut declined = 0;
    for c in 0..customers {
        if rng.random_bool(0.1) {
            let email = s.email(&format!("c{c}"));
            s.sim_post(
                "/_sim/cards",
                serde_json::json!({"email": email, "outcome": "decline"}),
            )
            .await?;
            declined += 1;
        }
    }
    let (first, last) = s.renewal_window().await?;
    s.advance_sim_to(first - 1).await?;
    // Across the renewals, then the 3-, 5- and 7-day retries.
    let step = ((last - first) / 8).max(1);
    let mut at = first;
    while at <= last + 8 * 86_400 {
        at += if at <= last { step } else { 86_400 };
        if rng.random_bool(0.5) {
            let f = serde_json::json!({
                "drop": rng.random_range(0.0..0.3), "duplicate": rng.random_range(0.0..0.3),
                "reorder": rng.random_bool(0.5),
            });
            s.sim_faults(f).await?;
        }
        s.advance_sim_to(at).await?;
        if rng.random_bool(0.3) || s.server_died() {
            s.stop_server();
            *kills += 1;
            let failpoint = rng.random_bool(0.4).then_some("webhook.before_append");
            restart(s, failpoint, kills, failpoint_kills).await?;
        }
    }
    Ok(declined)
}

/// `progress` counts the purchases paid so far (drawn on a terminal only).
pub async fn run(
    database_url: &str,
    purchases: usize,
    seed: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ChaosReport> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut s = Stage::set_up(database_url, "payledger_chaos", true, true, seed).await?;
    let _ = std::fs::remove_dir_all(&s.mail_dir);
    std::fs::create_dir_all(&s.mail_dir)?;
    let (mut kills, mut failpoint_kills, mut cuts, mut faults) = (0u32, 0u32, 0u32, 0u32);
    let mut armed = false;
    let arm = |rng: &mut rand_chacha::ChaCha8Rng| -> Option<&'static str> {
        rng.random_bool(0.4).then(|| {
            payledger::failpoint::ALL[rng.random_range(0..payledger::failpoint::ALL.len())]
        })
    };
    s.start_server(None).await?;
    let mut paid = 0usize;
    let mut customer = 0usize;
    let deadline = Instant::now() + Duration::from_secs(60 + purchases as u64);
    while paid < purchases && Instant::now() < deadline {
        if rng.random_bool(0.15) {
            let f = serde_json::json!({
                "drop": rng.random_range(0.0..0.3), "duplicate": rng.random_range(0.0..0.3),
                "reorder": rng.random_bool(0.5), "delay_ms": rng.random_range(0..200),
                "endpoint_down": rng.random_bool(0.1),
            });
            s.sim_faults(f).await?;
            faults += 1;
        }
        if rng.random_bool(0.01) {
            s.cut_connections().await?;
            cuts += 1;
        }
        if s.server_died() {
            kills += 1;
            if armed {
                failpoint_kills += 1;
            }
            armed = restart(&mut s, arm(&mut rng), &mut kills, &mut failpoint_kills).await?;
        } else if rng.random_bool(0.1) {
            s.stop_server();
            kills += 1;
            armed = restart(&mut s, arm(&mut rng), &mut kills, &mut failpoint_kills).await?;
        }
        let email = s.email(&format!("c{customer}"));
        if s.buy(&email).await.is_ok() {
            paid += 1;
            customer += 1;
            progress.set_position(paid as u64);
        }
    }
    // A year later: every subscription renews while the faults and kills
    // go on; a tenth of the customers' cards decline every retry.
    let declined =
        a_year_of_renewals(&mut s, &mut rng, customer, &mut kills, &mut failpoint_kills).await?;
    // Calm: faults off, no failpoints, a last reconciliation, then quiet.
    s.sim_faults(serde_json::json!({})).await?;
    s.restart_server(None).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.reconcile().await?;
    let quiet_by = Instant::now() + Duration::from_secs(120);
    let c = s.db.pool.get().await?;
    loop {
        let pending: i64 = c
            .query_one(
                "SELECT (SELECT count(*) FROM outgoing_emails WHERE status <> $1)
                      + (SELECT count(*) FROM customer_status WHERE payment_id IS NOT NULL AND state <> ALL($2))",
                &[&EmailStatus::Sent.as_str(), &&[PaymentState::Active.as_str(), PaymentState::Refunded.as_str()][..]],
            )
            .await?
            .get(0);
        let lag: i64 = payledger::projections_lag(&s.db.pool).await?;
        // A renewal whose webhooks were lost is recorded by the worker's
        // check before access ends, which runs on its own schedule: quiet
        // means every renewal and every ending has reached the ledger too.
        let renewals: i64 = c
            .query_one(
                "SELECT count(*) FROM events WHERE event_type = 'InvoicePaid' AND payload->>'billing_reason' = $1",
                &[&"subscription_cycle"],
            )
            .await?
            .get(0);
        let ended: i64 = c
            .query_one(
                "SELECT count(*) FROM subscriptions WHERE status = $1",
                &[&SubscriptionStatus::Ended.as_str()],
            )
            .await?
            .get(0);
        let (at_processor, _) = s.processor_renewals().await?;
        let settled = renewals == at_processor && ended == declined as i64;
        if (pending == 0 && lag == 0 && settled) || Instant::now() > quiet_by {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let count = |sql: &'static str, value: &'static str| {
        let c = &c;
        async move {
            c.query_one(sql, &[&value])
                .await
                .map(|r| r.get::<_, i64>(0))
        }
    };
    let charge_succeeded_events = count(
        "SELECT count(*) FROM events WHERE event_type = $1",
        "ChargeSucceeded",
    )
    .await?;
    let active_subscriptions = count(
        "SELECT count(*) FROM subscriptions WHERE status = $1",
        SubscriptionStatus::Active.as_str(),
    )
    .await?;
    let ended_subscriptions = count(
        "SELECT count(*) FROM subscriptions WHERE status = $1",
        SubscriptionStatus::Ended.as_str(),
    )
    .await?;
    let payments_recorded = count(
        "SELECT count(DISTINCT p) FROM (
           SELECT payload->>'payment_id' AS p FROM events WHERE event_type = $1
           UNION SELECT payload->>'payment_id' FROM events WHERE event_type = 'InvoicePaid') x",
        "ChargeSucceeded",
    )
    .await?;
    let renewals_recorded = count(
        "SELECT count(*) FROM events WHERE event_type = 'InvoicePaid' AND payload->>'billing_reason' = $1",
        "subscription_cycle",
    )
    .await?;
    let dunning_emails = count(
        "SELECT count(*) FROM outgoing_emails WHERE email_key LIKE $1",
        "payment_failed:%",
    )
    .await?;
    let failed_attempts_recorded = count(
        "SELECT count(*) FROM events f WHERE f.event_type = $1 AND NOT EXISTS (
           SELECT 1 FROM events p WHERE p.event_type = 'InvoicePaid'
             AND p.payload->>'invoice_id' = f.payload->>'invoice_id')",
        "InvoicePaymentFailed",
    )
    .await?;
    let (renewals_at_processor, failed_attempts_at_processor) = s.processor_renewals().await?;
    let sent_keys = count(
        "SELECT count(*) FROM outgoing_emails WHERE status = $1",
        EmailStatus::Sent.as_str(),
    )
    .await?;
    let charges_at_processor = s.processor_charges().await? as i64;
    let mut per_id = std::collections::HashMap::<String, usize>::new();
    for entry in std::fs::read_dir(&s.mail_dir)?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        if let Some(id) = text
            .lines()
            .find(|l| l.to_lowercase().starts_with("message-id:"))
        {
            *per_id.entry(id.to_string()).or_default() += 1;
        }
    }
    let duplicate_emails: usize = per_id.values().map(|n| n - 1).sum();
    let mut violations: Vec<String> = payledger::audit::invariants::check(&s.db.pool)
        .await?
        .violations
        .into_iter()
        .map(|v| format!("guarantee {}: {}: {}", v.guarantee, v.subject, v.detail))
        .collect();
    if payments_recorded != charges_at_processor {
        violations.push(format!("guarantee 1: {charges_at_processor} charges at the processor, {payments_recorded} payments recorded"));
    }
    if active_subscriptions + ended_subscriptions != paid as i64
        || ended_subscriptions != declined as i64
    {
        violations.push(format!(
            "{paid} customers paid ({declined} declined a year later): {active_subscriptions} active, {ended_subscriptions} ended"
        ));
    }
    if renewals_recorded != renewals_at_processor {
        violations.push(format!(
            "every paid invoice is a period: {renewals_at_processor} renewals at the processor, {renewals_recorded} recorded"
        ));
    }
    if dunning_emails != failed_attempts_recorded
        || failed_attempts_recorded > failed_attempts_at_processor
    {
        violations.push(format!(
            "every failed attempt emailed once: {failed_attempts_at_processor} failed attempts at the processor, {failed_attempts_recorded} recorded, {dunning_emails} dunning emails"
        ));
    }
    if (per_id.len() as i64) < sent_keys || per_id.len() < paid {
        violations.push(format!(
            "guarantee 4: {} distinct emails delivered for {paid} activations",
            per_id.len()
        ));
    }
    if duplicate_emails > kills as usize {
        violations.push(format!(
            "guarantee 4: {duplicate_emails} duplicate emails > {kills} kills"
        ));
    }
    s.stop_server();
    Ok(ChaosReport {
        purchases: paid,
        kills,
        failpoint_kills,
        connection_cuts: cuts,
        faults_injected: faults,
        charges_at_processor,
        charge_succeeded_events,
        payments_recorded,
        active_subscriptions,
        renewals_at_processor,
        renewals_recorded,
        ended_subscriptions,
        failed_attempts_at_processor,
        failed_attempts_recorded,
        dunning_emails,
        emails_delivered: per_id.len(),
        duplicate_emails,
        violations,
    })
}
