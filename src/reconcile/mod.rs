//! `payledger reconcile`: ask the processor what it charged and refunded in a
//! window, and append what the ledger missed — with the same deterministic
//! ids as the webhook, so a late webhook and the reconciler never record one
//! fact twice.

use crate::processor::client::{ListFilter, ProcessorClient, ProcessorError};
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError, StreamAppend};
use crate::webhook::mapping::{self, ProcessorFact};
use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{
    Actor, ChargeSource, DomainEvent, EventData, Metadata, ReconciliationCompleted, StreamId,
};
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
    /// Objects the processor shows that payledger cannot turn into a fact
    /// (e.g. a non-positive amount); named in `problems`.
    pub differences: u64,
    pub problems: Vec<String>,
    /// The facts appended (or, with --dry-run, that would be).
    pub appended: Vec<String>,
    pub duration_ms: u64,
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default()
}

/// One reconciliation run over `[from, to]`. Sessions come first: a paid
/// session carries the checkout reference, so its `ChargeSucceeded` is the
/// richest; the same payment seen again as a charge is then a duplicate.
pub async fn reconcile(
    store: &PgEventStore,
    processor: &ProcessorClient,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    dry_run: bool,
) -> Result<ReconcileReport, ReconcileError> {
    let started = std::time::Instant::now();
    let run_id = Uuid::new_v4();
    let filter = ListFilter {
        created_gte: Some(unix(from)),
        created_lte: Some(unix(to)),
        limit: Some(100),
        extra: vec![],
    };
    let mut report = ReconcileReport {
        run_id,
        window_from: from,
        window_to: to,
        dry_run,
        objects_seen: 0,
        missing_appended: 0,
        differences: 0,
        problems: vec![],
        appended: vec![],
        duration_ms: 0,
    };
    let source = ChargeSource::Reconciliation;

    let mut sessions = processor.checkout_sessions(filter.clone());
    while let Some(page) = sessions.next_page().await? {
        for s in page {
            report.objects_seen += 1;
            let fact = mapping::charge_of_session(&s, at(s.created), source);
            record(
                store,
                run_id,
                fact.map(|f| f.into_iter().collect()),
                &s.id,
                dry_run,
                &mut report,
            )
            .await?;
        }
    }
    let mut charges = processor.charges(filter.clone());
    while let Some(page) = charges.next_page().await? {
        for c in page {
            report.objects_seen += 1;
            if !c.paid || c.status.as_deref().is_some_and(|s| s != "succeeded") {
                continue;
            }
            let fact = mapping::charge_of_charge(&c, source);
            record(
                store,
                run_id,
                fact.map(|f| vec![f]),
                &c.id,
                dry_run,
                &mut report,
            )
            .await?;
        }
    }
    let mut refunds = processor.refunds(filter);
    while let Some(page) = refunds.next_page().await? {
        for r in page {
            report.objects_seen += 1;
            if r.status.as_deref() == Some("failed") {
                continue;
            }
            let payment = r
                .payment_intent
                .as_ref()
                .and_then(|p| p.id())
                .or(r.charge.as_ref().and_then(|c| c.id()))
                .unwrap_or_default()
                .to_string();
            let fact = mapping::refund_fact(&r, &payment, source);
            record(
                store,
                run_id,
                fact.map(|f| vec![f]),
                &r.id,
                dry_run,
                &mut report,
            )
            .await?;
        }
    }

    report.duration_ms = started.elapsed().as_millis() as u64;
    if !dry_run {
        let completed: DomainEvent = ReconciliationCompleted {
            run_id,
            window_from: from,
            window_to: to,
            objects_seen: report.objects_seen,
            missing_appended: report.missing_appended,
            differences: report.differences,
            duration_ms: report.duration_ms,
        }
        .into();
        let data = EventData::new(&completed, Uuid::new_v4(), metadata(run_id))?;
        store
            .append_to_stream(
                StreamId::reconciliation(run_id),
                ExpectedVersion::NoStream,
                vec![data],
            )
            .await?;
    }
    Ok(report)
}

fn metadata(run_id: Uuid) -> Metadata {
    Metadata::new(run_id, Actor::reconciler(), "reconciliation")
}

async fn record(
    store: &PgEventStore,
    run_id: Uuid,
    facts: Result<Vec<ProcessorFact>, String>,
    object_id: &str,
    dry_run: bool,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    let facts = match facts {
        Ok(f) => f,
        Err(reason) => {
            report.differences += 1;
            report.problems.push(format!("{object_id}: {reason}"));
            return Ok(());
        }
    };
    for fact in facts {
        let data = EventData::for_processor_fact(&fact.event, &fact.object_id, metadata(run_id))?;
        let label = format!("{} {}", fact.event.event_type(), fact.object_id);
        if dry_run {
            let client = store.pool().get().await.map_err(StoreError::from)?;
            let known = client
                .query_opt(
                    "SELECT 1 FROM events WHERE event_id = $1",
                    &[&data.event_id],
                )
                .await
                .map_err(StoreError::from)?
                .is_some();
            if !known && !report.appended.contains(&label) {
                report.missing_appended += 1;
                report.appended.push(label);
            }
            continue;
        }
        let outcome = store
            .append(vec![StreamAppend::new(
                fact.stream,
                ExpectedVersion::Any,
                vec![data],
            )])
            .await?;
        if outcome.stored() > 0 {
            report.missing_appended += 1;
            report.appended.push(label);
        }
    }
    Ok(())
}
