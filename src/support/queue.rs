//! `support queue`: what needs a person, oldest first, each with the exact
//! command that acts on it.

use super::SupportError;
use crate::plans::Plans;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use payledger_events::{shell_word, Money};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    pub id: String,
    pub kind: String,
    pub status: String,
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
    kind: &str,
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
        "unmatched_charge" => format!("payledger support rescue {subject} --email {email} --plan {plan} --as NAME"),
        "duplicate_charge" => format!("payledger support refund {subject} --reason \"duplicate charge\" --as NAME"),
        "amount_mismatch" => format!("payledger support rescue {subject} --email {email} --plan {plan} --force \"REASON\" --as NAME   (or: payledger support refund {subject} --reason \"wrong amount\" --as NAME)"),
        "refund_without_charge" => "payledger reconcile --since 30d".into(),
        "email_undeliverable" => format!("payledger support resend-email {subject} --as NAME"),
        "unparsed_processor_event" | "processor_event_conflict" => format!("payledger audit log --stream {} --json", shell_word(&format!("processor-event-{}", raw_subject))),
        "processor_disagreement" => format!("payledger support find {}", shell_word(raw_subject.split(':').next().unwrap_or(raw_subject))),
        _ => format!("payledger support find {subject}"),
    }
}

pub async fn queue(
    pool: &Pool,
    plans: &Plans,
    all: bool,
    now: DateTime<Utc>,
) -> Result<Vec<QueueItem>, SupportError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, kind, subject, status, first_seen, amount, currency, customer_email, suggested_action
             FROM discrepancies WHERE $1 OR status <> 'resolved' ORDER BY first_seen, id",
            &[&all],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let kind: String = r.get("kind");
            let subject: String = r.get("subject");
            let email: Option<String> = r.get("customer_email");
            let amount: Option<i64> = r.get("amount");
            let currency: Option<String> = r.get("currency");
            let first_seen: DateTime<Utc> = r.get("first_seen");
            QueueItem {
                command: command_for(
                    &kind,
                    &subject,
                    email.as_deref(),
                    amount,
                    currency.as_deref(),
                    plans,
                ),
                id: r.get("id"),
                kind,
                status: r.get("status"),
                first_seen,
                age_minutes: (now - first_seen).num_minutes(),
                amount,
                currency,
                customer_email: email,
                suggested_action: r.get("suggested_action"),
            }
        })
        .collect())
}
