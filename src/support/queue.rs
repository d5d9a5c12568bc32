//! `support queue`: what needs a person, oldest first, each with the exact
//! command that acts on it.

use super::SupportError;
use crate::plans::Plans;
use chrono::{DateTime, Utc};
use payledger_events::{shell_word, Money};
use payledger_projections::read::{discrepancies, ReadModels};
use payledger_projections::states::{DiscrepancyKind, DiscrepancyStatus};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub id: String,
    pub kind: DiscrepancyKind,
    pub status: DiscrepancyStatus,
    pub first_seen: DateTime<Utc>,
    pub age_minutes: i64,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub customer_email: Option<String>,
    pub suggested_action: String,
    /// The command to run, with what is known filled in.
    pub command: String,
}

pub fn amount_text(amount: Option<i64>, currency: Option<&str>) -> String {
    Money::from_parts(amount, currency).map_or_else(|| "-".into(), |m| m.to_string())
}

fn command_for(
    kind: DiscrepancyKind,
    subject: &str,
    email: Option<&str>,
    amount: Option<i64>,
    currency: Option<&str>,
    plans: &Plans,
) -> String {
    let raw_subject = subject;
    // Every value from the ledger is quoted: it may be a customer's text.
    let email = email.map(shell_word).unwrap_or_else(|| "EMAIL".into());
    let subject = &shell_word(subject);
    let plan = match (amount, currency) {
        (Some(a), Some(c)) => match plans.priced(a, c).as_slice() {
            [one] => shell_word(&one.id),
            _ => "PLAN".into(),
        },
        _ => "PLAN".into(),
    };
    match kind {
        DiscrepancyKind::UnmatchedCharge => format!("payledger support rescue {subject} --email {email} --plan {plan} --as NAME"),
        DiscrepancyKind::DuplicateCharge => format!("payledger support refund {subject} --reason \"duplicate charge\" --as NAME"),
        DiscrepancyKind::AmountMismatch => format!("payledger support rescue {subject} --email {email} --plan {plan} --force \"REASON\" --as NAME   (or: payledger support refund {subject} --reason \"wrong amount\" --as NAME)"),
        DiscrepancyKind::RefundWithoutCharge => "payledger reconcile --since 30d".into(),
        DiscrepancyKind::EmailUndeliverable => format!("payledger support resend-email {subject} --as NAME"),
        DiscrepancyKind::UnparsedProcessorEvent | DiscrepancyKind::ProcessorEventConflict => format!("payledger audit log --stream {} --json", shell_word(&format!("processor-event-{}", raw_subject))),
        DiscrepancyKind::UnreadableProcessorObject => format!("payledger audit log --stream {} --json   (then look the object up at the processor)", shell_word(&format!("processor-object-{}", raw_subject))),
        DiscrepancyKind::ProcessorDisagreement => format!("payledger support find {}", shell_word(raw_subject.split(':').next().unwrap_or(raw_subject))),
        DiscrepancyKind::DisputeOpened => format!("payledger support find {subject}"),
        DiscrepancyKind::RenewalOrphan => format!("payledger support find {email}   (then grant access or refund: the processor renewed a subscription no checkout bought)"),
        DiscrepancyKind::AppWebhookUndeliverable => "payledger app-webhooks list   (then, the endpoint fixed: payledger app-webhooks replay ENDPOINT --since WHEN --as NAME)".into(),
        DiscrepancyKind::AccessWithoutPaidPeriod | DiscrepancyKind::SubscriptionDisagreement => format!(
            "payledger support find {email}   (compare with the processor; then cancel, grant or payledger support resolve {} --note \"WHAT\" --as NAME)",
            shell_word(&format!("{}:{raw_subject}", kind.as_str()))
        ),
        DiscrepancyKind::RenewalNotApplied => format!(
            "payledger support reply {email}   (then: payledger support resolve {} --note \"told the customer\" --as NAME)",
            shell_word(&format!("{}:{raw_subject}", DiscrepancyKind::RenewalNotApplied.as_str()))
        ),
    }
}

pub async fn queue(
    read: &ReadModels,
    plans: &Plans,
    all: bool,
    now: DateTime<Utc>,
) -> Result<Vec<QueueItem>, SupportError> {
    Ok(discrepancies::queue(read, all)
        .await?
        .into_iter()
        .map(|r| QueueItem {
            command: command_for(
                r.kind,
                &r.subject,
                r.customer_email.as_deref(),
                r.amount,
                r.currency.as_deref(),
                plans,
            ),
            id: r.id,
            kind: r.kind,
            status: r.status,
            first_seen: r.first_seen,
            age_minutes: (now - r.first_seen).num_minutes(),
            amount: r.amount,
            currency: r.currency,
            customer_email: r.customer_email,
            suggested_action: r.suggested_action,
        })
        .collect())
}
