//! One run's bookkeeping: which facts the ledger already holds (one query
//! per page, not per object), what is missing, and where the processor and
//! the ledger disagree.

use super::decide::{self, label, RefundedCharge};
use super::{metadata, ReconcileError, ReconcileReport, RunKind};
use crate::processor::mapping::ProcessorFact;
use crate::processor::stripe::Charge;
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StreamAppend};
use chrono::{DateTime, Utc};
use payledger_events::{
    DomainEvent, EventData, ProcessorDisagreement, ProcessorObjectUnreadable, StreamId,
};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// One object a page listed, and what it states.
pub(super) struct Listed {
    pub object_id: String,
    pub stated: Result<Vec<ProcessorFact>, String>,
    /// The object as the processor sent it, kept only when nothing it
    /// states can be read: which payment and customer it is about.
    wire: serde_json::Value,
}

impl Listed {
    pub fn new(
        object_id: &str,
        stated: Result<Vec<ProcessorFact>, String>,
        object: &impl serde::Serialize,
    ) -> Self {
        let wire = match stated {
            Ok(_) => serde_json::Value::Null,
            Err(_) => serde_json::to_value(object).unwrap_or_default(),
        };
        Listed {
            object_id: object_id.to_string(),
            stated,
            wire,
        }
    }
}

/// The payment (PaymentIntent) and the customer's address an object names,
/// as far as it can be trusted to name a stream and fill a column.
fn about(object: &serde_json::Value) -> (Option<String>, Option<String>) {
    use crate::processor::mapping::{printable, storable_object_id};
    let id = |v: &serde_json::Value| {
        v.as_str()
            .or_else(|| v.get("id").and_then(|i| i.as_str()))
            .map(str::to_string)
    };
    // An undelivered event is about the object it carries.
    let object = object.pointer("/data/object").unwrap_or(object);
    let payment = match object.get("object").and_then(|o| o.as_str()) {
        Some("payment_intent") => object.get("id").and_then(id),
        Some(kind) => object.get("payment_intent").and_then(id).or_else(|| {
            (kind == "charge")
                .then(|| object.get("id").and_then(id))
                .flatten()
        }),
        None => None,
    }
    .filter(|p| storable_object_id(p) == *p);
    let email = [
        "/customer_details/email",
        "/customer_email",
        "/receipt_email",
        "/billing_details/email",
    ]
    .iter()
    .find_map(|path| object.pointer(path).and_then(|e| e.as_str()))
    .filter(|e| !e.is_empty())
    .map(|e| printable(e).to_lowercase());
    (payment, email)
}

pub(super) struct Run<'a> {
    store: &'a PgEventStore,
    report: ReconcileReport,
    refunded: Vec<RefundedCharge>,
    /// With --dry-run: ids that would have been appended, so the same fact
    /// seen as a session and as a charge is counted once.
    would_append: HashSet<Uuid>,
    /// Told the objects seen so far (a terminal shows it).
    progress: Option<&'a Progress<'a>>,
}

/// Hears how many processor objects a run has seen so far.
pub type Progress<'a> = dyn Fn(u64) + Send + Sync + 'a;

impl<'a> Run<'a> {
    pub fn new(
        store: &'a PgEventStore,
        run_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        dry_run: bool,
    ) -> Self {
        Run {
            store,
            report: ReconcileReport {
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
            },
            refunded: vec![],
            would_append: HashSet::new(),
            progress: None,
        }
    }

    pub fn with_progress(mut self, progress: Option<&'a Progress<'a>>) -> Self {
        self.progress = progress;
        self
    }

    pub fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.report.window_from, self.report.window_to)
    }

    pub fn into_report(self) -> ReconcileReport {
        self.report
    }

    pub fn seen(&mut self, n: u64) {
        self.report.objects_seen += n;
        if let Some(progress) = self.progress {
            progress(self.report.objects_seen);
        }
    }

    pub fn refunded_at_processor(&mut self, charge: &Charge) {
        self.refunded.push(RefundedCharge {
            payment_id: charge.payment_id().to_string(),
            charge_id: charge.id.clone(),
            amount_refunded: charge.amount_refunded,
            currency: charge.currency.clone(),
        });
    }

    fn data(&self, fact: &ProcessorFact) -> Result<EventData, ReconcileError> {
        self.data_of(&fact.event, &fact.object_id)
    }

    fn data_of(&self, event: &DomainEvent, object_id: &str) -> Result<EventData, ReconcileError> {
        Ok(EventData::for_processor_fact(
            event,
            object_id,
            metadata(self.report.run_id, RunKind::Manual),
        )?)
    }

    /// One page of processor objects, each with the facts it states (or why
    /// it states none that payledger can record).
    pub async fn record_page(
        &mut self,
        object: &str,
        objects: Vec<Listed>,
    ) -> Result<(), ReconcileError> {
        self.seen(objects.len() as u64);
        let mut facts = vec![];
        let mut unreadable = vec![];
        for listed in objects {
            match listed.stated {
                Ok(f) => facts.extend(f),
                Err(reason) => {
                    self.report.differences += 1;
                    self.report
                        .problems
                        .push(format!("{}: {reason}", listed.object_id));
                    let (payment_id, customer_email) = about(&listed.wire);
                    unreadable.push(ProcessorObjectUnreadable {
                        object_id: listed.object_id,
                        object: object.to_string(),
                        payment_id,
                        customer_email,
                        reason,
                        run_id: self.report.run_id,
                    });
                }
            }
        }
        self.record_unreadable(unreadable).await?;
        let mut candidates = Vec::with_capacity(facts.len());
        for fact in facts {
            let data = self.data(&fact)?;
            candidates.push((fact, data));
        }
        let ids: Vec<Uuid> = candidates.iter().map(|(_, d)| d.event_id).collect();
        let known = self.known(&ids).await?;
        let verdict = decide::what_is_missing(candidates, &known);
        for (fact, data) in verdict.missing {
            self.append_missing(fact, data).await?;
        }
        let disagreements = verdict.disagreements;
        self.record_disagreements(disagreements).await?;
        crate::failpoint::hit("reconcile.after_page");
        Ok(())
    }

    /// Objects whose facts cannot be read may be money taken: each is
    /// recorded once (its id names the fact), which opens a discrepancy for
    /// a person — a count in the run's summary would be the only trace.
    async fn record_unreadable(
        &mut self,
        unreadable: Vec<ProcessorObjectUnreadable>,
    ) -> Result<(), ReconcileError> {
        use crate::processor::mapping::{printable, storable_object_id};
        for mut fact in unreadable {
            fact.object_id = storable_object_id(&fact.object_id);
            fact.reason = printable(&fact.reason);
            // One payment is one thing to look at, however many of its
            // objects (session, charge, their events) cannot be read.
            let key = fact.payment_id.clone().unwrap_or(fact.object_id.clone());
            let event: DomainEvent = fact.into();
            let data = self.data_of(&event, &key)?;
            if self.report.dry_run {
                if self.would_append.insert(data.event_id) {
                    self.report.appended.push(label(&event, &key));
                }
                continue;
            }
            let outcome = self
                .store
                .append(vec![StreamAppend::new(
                    StreamId::processor_object(&key),
                    ExpectedVersion::Any,
                    vec![data],
                )])
                .await?;
            if outcome.stored() > 0 {
                self.report.appended.push(label(&event, &key));
            }
        }
        Ok(())
    }

    /// Processor-refunded charges whose payment has no `ChargeRefunded` in
    /// the ledger (the refund happened outside the window, or its fact was
    /// lost some other way).
    pub async fn check_refunds(&mut self) -> Result<(), ReconcileError> {
        let refunded = std::mem::take(&mut self.refunded);
        for chunk in refunded.chunks(500) {
            let streams: Vec<StreamId> = chunk
                .iter()
                .map(|c| StreamId::payment(&c.payment_id))
                .collect();
            let with_refund = self
                .store
                .streams_holding(&streams, "ChargeRefunded")
                .await?;
            let disagreements = decide::unrecorded_refunds(chunk, |c| {
                with_refund.contains(&StreamId::payment(&c.payment_id))
                    || self.would_append_refund_of(&c.payment_id)
            });
            self.record_disagreements(disagreements).await?;
        }
        Ok(())
    }

    fn would_append_refund_of(&self, payment_id: &str) -> bool {
        let prefix = format!("ChargeRefunded {payment_id} ");
        self.report.dry_run && self.report.appended.iter().any(|l| l.starts_with(&prefix))
    }

    /// What the ledger recorded under the ids it already holds.
    async fn known(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, DomainEvent>, ReconcileError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        Ok(self.store.events_by_id(ids).await?)
    }

    async fn append_missing(
        &mut self,
        fact: ProcessorFact,
        data: EventData,
    ) -> Result<(), ReconcileError> {
        let label = label(&fact.event, &fact.object_id);
        if self.report.dry_run {
            if self.would_append.insert(data.event_id) {
                self.report.missing_appended += 1;
                self.report.appended.push(label);
            }
            return Ok(());
        }
        crate::failpoint::hit("reconcile.before_append");
        let outcome = self
            .store
            .append(vec![StreamAppend::new(
                fact.stream,
                ExpectedVersion::Any,
                vec![data],
            )])
            .await?;
        // Zero stored: a webhook (or another reconciler) got there between
        // our check and our append — the fact is recorded once either way.
        if outcome.stored() > 0 {
            self.report.missing_appended += 1;
            self.report.appended.push(label);
        }
        Ok(())
    }

    async fn record_disagreements(
        &mut self,
        found: Vec<ProcessorDisagreement>,
    ) -> Result<(), ReconcileError> {
        if found.is_empty() {
            return Ok(());
        }
        let mut prepared = vec![];
        for d in found {
            self.report.differences += 1;
            self.report.problems.push(d.detail.clone());
            let key = format!(
                "{}:{}:{}{}",
                d.payment_id,
                d.kind,
                d.processor_amount,
                d.processor_currency.as_str()
            );
            let stream = StreamId::payment(&d.payment_id);
            let event: DomainEvent = d.into();
            let data = EventData::for_processor_fact(
                &event,
                &key,
                metadata(self.report.run_id, RunKind::Manual),
            )?;
            prepared.push((stream, data, label(&event, &key)));
        }
        if self.report.dry_run {
            return Ok(());
        }
        for (stream, data, label) in prepared {
            let outcome = self
                .store
                .append(vec![StreamAppend::new(
                    stream,
                    ExpectedVersion::Any,
                    vec![data],
                )])
                .await?;
            if outcome.stored() > 0 {
                self.report.appended.push(label);
            }
        }
        Ok(())
    }
}
