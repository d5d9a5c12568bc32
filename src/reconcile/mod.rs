//! `payledger reconcile`: ask the processor what it charged, refunded and
//! disputed in a window — and which events it could not deliver — and append
//! what the ledger missed, with the same deterministic ids as the webhook, so
//! a late webhook and the reconciler never record one fact twice.
//!
//! Two reconcilers at once are safe by idempotency (the store keeps each
//! event id once); the schedule in `work` also takes an advisory lock so two
//! workers do not walk the processor twice for nothing.

pub mod decide;
#[cfg(test)]
mod decide_tests;
mod run;

pub use run::Progress;
pub mod schedule;

use crate::processor::client::{ListFilter, ProcessorClient, ProcessorError};
use crate::processor::mapping;
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError};
use chrono::{DateTime, Duration, TimeZone, Utc};
use payledger_events::{
    Actor, ChargeSource, DomainEvent, EventData, Metadata, ReconciliationCompleted,
    ReconciliationFailed, StreamId,
};
use run::{Listed, Run};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Processor(#[from] ProcessorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode an event: {0}")]
    Encode(#[from] serde_json::Error),
}

#[derive(Debug, Clone, Serialize)]
pub struct ReconcileReport {
    pub run_id: Uuid,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub dry_run: bool,
    pub objects_seen: u64,
    pub missing_appended: u64,
    /// Objects the processor shows differently from the ledger (amount,
    /// currency, refunded there but not here) or that cannot become a fact
    /// at all; each named in `problems`.
    pub differences: u64,
    pub problems: Vec<String>,
    /// The facts appended (or, with --dry-run, that would be).
    pub appended: Vec<String>,
    pub duration_ms: u64,
}

/// Where a run's record goes: its own stream, or the schedule's stream
/// whose last completed run is the schedule's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Manual,
    Scheduled,
}

/// A run that stopped half-way: what it had done, and why it stopped.
#[derive(Debug, thiserror::Error)]
#[error("reconciliation of {} .. {} failed after {} objects ({} appended): {error}", .report.window_from, .report.window_to, .report.objects_seen, .report.missing_appended)]
pub struct RunFailed {
    pub report: Box<ReconcileReport>,
    pub error: ReconcileError,
}

/// How long the processor keeps events listable (Stripe: 30 days).
const EVENT_RETENTION_DAYS: i64 = 30;

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default()
}

/// One manual reconciliation run over `[from, to]`.
pub async fn reconcile(
    store: &PgEventStore,
    processor: &ProcessorClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
) -> Result<ReconcileReport, RunFailed> {
    reconcile_as(store, processor, from, to, dry_run, RunKind::Manual).await
}

pub async fn reconcile_as(
    store: &PgEventStore,
    processor: &ProcessorClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
    kind: RunKind,
) -> Result<ReconcileReport, RunFailed> {
    reconcile_reporting(store, processor, from, to, dry_run, kind, None).await
}

/// [`reconcile_as`], telling `progress` how many processor objects it has
/// seen so far.
pub async fn reconcile_reporting(
    store: &PgEventStore,
    processor: &ProcessorClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
    kind: RunKind,
    progress: Option<&Progress<'_>>,
) -> Result<ReconcileReport, RunFailed> {
    let started = std::time::Instant::now();
    let mut run = Run::new(store, Uuid::new_v4(), from, to, dry_run).with_progress(progress);
    let walked = walk(&mut run, processor, store.clock().now()).await;
    let mut report = run.into_report();
    report.duration_ms = started.elapsed().as_millis() as u64;
    if let Err(error) = walked {
        if !dry_run {
            if let Err(e) = record_failure(store, &report, &error, kind).await {
                tracing::error!(error = %e, run_id = %report.run_id, "could not record the failed reconciliation run");
            }
        }
        return Err(RunFailed {
            report: Box::new(report),
            error,
        });
    }
    if !dry_run {
        if let Err(error) = record_completion(store, &report, kind).await {
            return Err(RunFailed {
                report: Box::new(report),
                error,
            });
        }
    }
    Ok(report)
}

/// Sessions first: a paid session carries the checkout reference, so its
/// `ChargeSucceeded` is the richest, and the same payment seen again as a
/// charge is a duplicate. Charges before refunds and disputes keep a
/// payment's facts in the order they happened.
async fn walk(
    run: &mut Run<'_>,
    processor: &ProcessorClient,
    now: DateTime<Utc>,
) -> Result<(), ReconcileError> {
    let (from, to) = run.window();
    let filter = ListFilter {
        created_gte: Some(unix(from)),
        created_lte: Some(unix(to)),
        limit: Some(100),
        extra: vec![],
    };
    let source = ChargeSource::Reconciliation;

    let mut sessions = processor.checkout_sessions(filter.clone());
    while let Some(page) = sessions.next_page().await? {
        let facts = page
            .iter()
            .map(|s| {
                let fact = mapping::charge_of_session(s, at(s.created), source);
                Listed::new(&s.id, fact.map(|f| f.into_iter().collect()), s)
            })
            .collect();
        run.record_page("checkout session", facts).await?;
    }
    walk_billing(run, processor, &filter, now).await?;
    let mut charges = processor.charges(filter.clone());
    while let Some(page) = charges.next_page().await? {
        let mut facts = vec![];
        for c in &page {
            if !c.paid || c.status.as_deref().is_some_and(|s| s != "succeeded") {
                run.seen(1);
                continue;
            }
            if c.amount_refunded > 0 {
                run.refunded_at_processor(c);
            }
            facts.push(Listed::new(
                &c.id,
                mapping::charge_of_charge(c, source).map(|f| vec![f]),
                c,
            ));
        }
        run.record_page("charge", facts).await?;
    }
    let mut disputes = processor.disputes(filter.clone());
    while let Some(page) = disputes.next_page().await? {
        let facts = page
            .iter()
            .map(|d| {
                let mut facts = vec![mapping::dispute_opened(d)];
                if mapping::dispute_is_closed(&d.status) {
                    facts.push(mapping::dispute_closed(d, now));
                }
                Listed::new(&d.id, facts.into_iter().collect(), d)
            })
            .collect();
        run.record_page("dispute", facts).await?;
    }
    let mut refunds = processor.refunds(filter.clone());
    while let Some(page) = refunds.next_page().await? {
        let mut facts = vec![];
        for r in &page {
            if r.status.as_deref() == Some("failed") {
                run.seen(1);
                continue;
            }
            let payment = r
                .payment_intent
                .as_ref()
                .and_then(|p| p.id())
                .or(r.charge.as_ref().and_then(|c| c.id()))
                .unwrap_or_default()
                .to_string();
            facts.push(Listed::new(
                &r.id,
                mapping::refund_fact(r, &payment, source).map(|f| vec![f]),
                r,
            ));
        }
        run.record_page("refund", facts).await?;
    }
    // Whatever the processor gave up delivering, within its retention.
    let retained = (now - Duration::days(EVENT_RETENTION_DAYS)).max(from);
    if retained <= to {
        let undelivered = ListFilter {
            created_gte: Some(unix(retained)),
            extra: vec![("delivery_success".into(), "false".into())],
            ..filter
        };
        let mut events = processor.events(undelivered);
        while let Some(page) = events.next_page().await? {
            let facts = page
                .iter()
                .map(|e| Listed::new(&e.id, mapping::facts_of_event(e, source), e))
                .collect();
            run.record_page("event", facts).await?;
        }
    }
    run.check_refunds().await
}

/// Subscriptions of every status (the processor lists only live ones
/// unless asked for `all`: a cancelled subscription is exactly what must
/// not be missed) and their paid invoices, created in the window.
async fn walk_billing(
    run: &mut Run<'_>,
    processor: &ProcessorClient,
    filter: &ListFilter,
    now: DateTime<Utc>,
) -> Result<(), ReconcileError> {
    use payledger_stripe::lifecycle::{facts_of_subscription, invoice_paid};
    let mut subscriptions = processor.subscriptions(ListFilter {
        extra: vec![("status".into(), "all".into())],
        ..filter.clone()
    });
    while let Some(page) = subscriptions.next_page().await? {
        let facts = page
            .iter()
            .map(|s| Listed::new(&s.id, facts_of_subscription(s, now, false), s))
            .collect();
        run.record_page("subscription", facts).await?;
    }
    let mut invoices = processor.invoices(ListFilter {
        extra: vec![("status".into(), "paid".into())],
        ..filter.clone()
    });
    while let Some(page) = invoices.next_page().await? {
        let facts = page
            .iter()
            .map(|i| {
                let fact = invoice_paid(i, ChargeSource::Reconciliation);
                Listed::new(&i.id, fact.map(|f| f.into_iter().collect()), i)
            })
            .collect();
        run.record_page("invoice", facts).await?;
    }
    Ok(())
}

fn metadata(run_id: Uuid, kind: RunKind) -> Metadata {
    let source = match kind {
        RunKind::Manual => "reconciliation",
        RunKind::Scheduled => "reconciliation-schedule",
    };
    Metadata::new(run_id, Actor::reconciler(), source)
}

fn record_stream(run_id: Uuid, kind: RunKind) -> StreamId {
    match kind {
        RunKind::Manual => StreamId::reconciliation(run_id),
        RunKind::Scheduled => StreamId::reconciliation_schedule(),
    }
}

async fn record_completion(
    store: &PgEventStore,
    report: &ReconcileReport,
    kind: RunKind,
) -> Result<(), ReconcileError> {
    let completed: DomainEvent = ReconciliationCompleted {
        run_id: report.run_id,
        window_from: report.window_from,
        window_to: report.window_to,
        objects_seen: report.objects_seen,
        missing_appended: report.missing_appended,
        differences: report.differences,
        duration_ms: report.duration_ms,
    }
    .into();
    append_record(store, completed, report.run_id, kind).await
}

async fn record_failure(
    store: &PgEventStore,
    report: &ReconcileReport,
    error: &ReconcileError,
    kind: RunKind,
) -> Result<(), ReconcileError> {
    let failed: DomainEvent = ReconciliationFailed {
        run_id: report.run_id,
        window_from: report.window_from,
        window_to: report.window_to,
        objects_seen: report.objects_seen,
        missing_appended: report.missing_appended,
        error: error.to_string(),
    }
    .into();
    append_record(store, failed, report.run_id, kind).await
}

async fn append_record(
    store: &PgEventStore,
    event: DomainEvent,
    run_id: Uuid,
    kind: RunKind,
) -> Result<(), ReconcileError> {
    let data = EventData::new(&event, Uuid::new_v4(), metadata(run_id, kind))?;
    store
        .append_to_stream(
            record_stream(run_id, kind),
            ExpectedVersion::Any,
            vec![data],
        )
        .await?;
    Ok(())
}
