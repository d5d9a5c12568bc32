//! Reconciliation's decisions, without I/O: given what the processor
//! states and what the ledger already holds, which facts are missing and
//! where the two disagree. `run.rs` reads, asks these, and appends.

use crate::processor::mapping::ProcessorFact;
use payledger_events::{Currency, DomainEvent, EventData, ProcessorDisagreement};
use std::collections::HashMap;
use uuid::Uuid;

/// A charge the processor shows as (partly) refunded; checked against the
/// ledger's refunds once every refund in the window has been recorded.
pub struct RefundedCharge {
    pub payment_id: String,
    pub charge_id: String,
    pub amount_refunded: i64,
    pub currency: String,
}

/// What one page of processor objects means for the ledger.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Facts the ledger lacks: to append.
    pub missing: Vec<(ProcessorFact, EventData)>,
    /// Facts the ledger holds differently: to record as disagreements.
    pub disagreements: Vec<ProcessorDisagreement>,
}

/// Each candidate fact against what the ledger recorded under its
/// (deterministic) id: absent is missing; present but with another amount
/// or currency is a disagreement; present and equal is nothing to do.
pub fn what_is_missing(
    candidates: Vec<(ProcessorFact, EventData)>,
    known: &HashMap<Uuid, DomainEvent>,
) -> Verdict {
    let mut verdict = Verdict::default();
    for (fact, data) in candidates {
        match known.get(&data.event_id) {
            Some(recorded) => verdict.disagreements.extend(disagreement(&fact, recorded)),
            None => verdict.missing.push((fact, data)),
        }
    }
    verdict
}

/// Processor-refunded charges the ledger has no refund for (`recorded`
/// says whether it has, or is about to append one).
pub fn unrecorded_refunds(
    refunded: &[RefundedCharge],
    recorded: impl Fn(&RefundedCharge) -> bool,
) -> Vec<ProcessorDisagreement> {
    refunded
        .iter()
        .filter(|c| !recorded(c))
        .filter_map(|c| {
            let currency = Currency::new(&c.currency).ok()?;
            Some(ProcessorDisagreement {
                payment_id: c.payment_id.clone(),
                kind: "refunded_at_processor".into(),
                ledger_amount: None,
                ledger_currency: None,
                processor_amount: c.amount_refunded,
                processor_currency: currency.clone(),
                processor_object_id: c.charge_id.clone(),
                detail: format!(
                    "the processor shows {} refunded on {} but the ledger has no refund",
                    currency.format_amount(c.amount_refunded),
                    c.payment_id
                ),
            })
        })
        .collect()
}

/// The processor's charge compared with the ledger's record of it.
pub fn disagreement(fact: &ProcessorFact, recorded: &DomainEvent) -> Option<ProcessorDisagreement> {
    let (DomainEvent::ChargeSucceeded(seen), DomainEvent::ChargeSucceeded(ledger)) =
        (&fact.event, recorded)
    else {
        return None;
    };
    let (ledger_amount, ledger_currency) = (ledger.amount, ledger.currency.clone());
    let kind = if ledger_currency != seen.currency {
        "currency_differs"
    } else if ledger_amount != seen.amount {
        "amount_differs"
    } else {
        return None;
    };
    Some(ProcessorDisagreement {
        payment_id: seen.payment_id.clone(),
        kind: kind.into(),
        ledger_amount: Some(ledger_amount),
        ledger_currency: Some(ledger_currency.clone()),
        processor_amount: seen.amount,
        processor_currency: seen.currency.clone(),
        processor_object_id: fact.object_id.clone(),
        detail: format!(
            "payment {}: the ledger recorded {} but the processor shows {}",
            seen.payment_id,
            ledger_currency.format_amount(ledger_amount),
            seen.currency.format_amount(seen.amount)
        ),
    })
}

/// How the report names an appended fact.
pub fn label(event: &DomainEvent, object_id: &str) -> String {
    match event {
        DomainEvent::ChargeRefunded(r) => format!("ChargeRefunded {} {object_id}", r.payment_id),
        other => format!("{} {object_id}", other.event_type()),
    }
}
