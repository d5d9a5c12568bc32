//! Auto-rescue: an open `unmatched_charge` that names the customer's email
//! and whose amount and currency fit exactly one plan is matched after a
//! grace period (so the normal path wins when it is merely slow). Anything
//! ambiguous waits for a person.

use crate::plans::Plans;
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError};
use chrono::Duration;
use payledger_events::{Actor, ChargeMatched, DomainEvent, EventData, Metadata, StreamId};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RescueReport {
    pub matched: Vec<String>,
    /// Payment id and why it was left for a person.
    pub left: Vec<(String, String)>,
}

pub async fn rescue_due(
    store: &PgEventStore,
    plans: &Plans,
    grace: Duration,
) -> Result<RescueReport, StoreError> {
    let now = store.clock().now();
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT subject, amount, currency, customer_email FROM discrepancies
             WHERE kind = 'unmatched_charge' AND status = 'open' AND first_seen <= $1
             ORDER BY first_seen",
            &[&(now - grace)],
        )
        .await?;
    let mut report = RescueReport::default();
    for r in rows {
        let payment_id: String = r.get(0);
        let amount: Option<i64> = r.get(1);
        let currency: Option<String> = r.get(2);
        let Some(email) = r.get::<_, Option<String>>(3) else {
            report
                .left
                .push((payment_id, "the charge carries no email".into()));
            continue;
        };
        let fitting = match (amount, currency.as_deref()) {
            (Some(a), Some(c)) => plans.priced(a, c),
            _ => vec![],
        };
        let plan = match fitting.as_slice() {
            [one] => (*one).clone(),
            [] => {
                report
                    .left
                    .push((payment_id, "the amount fits no plan".into()));
                continue;
            }
            _ => {
                report.left.push((
                    payment_id,
                    format!("the amount fits {} plans", fitting.len()),
                ));
                continue;
            }
        };
        let active = client
            .query_opt(
                "SELECT 1 FROM subscriptions WHERE email = $1 AND status = 'active' AND period_end > $2",
                &[&email, &now],
            )
            .await?
            .is_some();
        if active {
            report.left.push((
                payment_id,
                format!("{email} already has an active subscription: possibly a duplicate charge"),
            ));
            continue;
        }
        let event: DomainEvent = ChargeMatched {
            payment_id: payment_id.clone(),
            email: email.clone(),
            plan: plan.id.clone(),
            reason: format!(
                "auto-rescue: {} matches exactly one plan ({}) and the charge names {email}",
                plan.price(),
                plan.id
            ),
            matched_by: Actor::auto_rescue(),
        }
        .into();
        // Same id as a support rescue: whoever matches first, it is matched once.
        let data = EventData::for_processor_fact(
            &event,
            &payment_id,
            Metadata::new(uuid::Uuid::new_v4(), Actor::auto_rescue(), "auto-rescue"),
        )?;
        crate::failpoint::hit("rescue.before_match");
        store
            .append_to_stream(
                StreamId::payment(&payment_id),
                ExpectedVersion::Any,
                vec![data],
            )
            .await?;
        tracing::info!(payment_id = %payment_id, email = %email, plan = %plan.id, "auto-rescued an unmatched charge");
        report.matched.push(payment_id);
    }
    Ok(report)
}
