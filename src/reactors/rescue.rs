//! Auto-rescue: an open `unmatched_charge` that names the customer's email
//! and whose amount and currency fit exactly one plan is matched after a
//! grace period (so the normal path wins when it is merely slow). Anything
//! ambiguous waits for a person.

use crate::plans::Plans;
use crate::store::{EventStore, ExpectedVersion, PgEventStore, StoreError};
use crate::support::decide::{self, Refusal};
use crate::support::SupportError;
use chrono::Duration;
use payledger_events::{Actor, DomainEvent, EventData, Metadata, StreamId};
use payledger_projections::read::{discrepancies, subscriptions, ReadModels};
use payledger_projections::states::DiscrepancyKind;

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
    let read = ReadModels::of(store);
    let waiting =
        discrepancies::open_of_kind_since(&read, DiscrepancyKind::UnmatchedCharge, now - grace)
            .await?;
    let mut report = RescueReport::default();
    for d in waiting {
        let payment_id = d.subject;
        let facts = match crate::support::actions::payment_facts(store, &payment_id).await {
            Ok(facts) => facts,
            Err(SupportError::Store(e)) => return Err(e),
            Err(other) => {
                report.left.push((payment_id, other.to_string()));
                continue;
            }
        };
        let email = facts
            .charge
            .as_ref()
            .and_then(|c| c.customer_email.as_deref())
            .map(str::to_lowercase);
        let has_access = match &email {
            Some(e) => subscriptions::by_email(&read, e)
                .await?
                .is_some_and(|s| s.grants_access_at(now)),
            None => false,
        };
        let matched = match decide::auto_rescue(&facts, plans, has_access) {
            Ok(m) => m,
            Err(Refusal::Done(_)) => continue,
            Err(Refusal::Refused(why) | Refusal::NotFound(why) | Refusal::Invalid(why)) => {
                report.left.push((payment_id, why));
                continue;
            }
        };
        let (email, plan) = (matched.email.clone(), matched.plan.clone());
        // Same id as a support rescue: whoever matches first, it is matched once.
        let data = EventData::for_processor_fact(
            &DomainEvent::from(matched),
            &payment_id,
            Metadata::new(uuid::Uuid::new_v4(), Actor::auto_rescue(), "auto-rescue"),
        )?;
        crate::failpoint::hit("rescue.before_match");
        match store
            .append_to_stream(
                StreamId::payment(&payment_id),
                ExpectedVersion::Exact(facts.version),
                vec![data],
            )
            .await
        {
            Ok(_) => {}
            // The payment changed since we looked (a refund, a person's
            // rescue): decide again next round, on what it is then.
            Err(StoreError::Conflict { .. }) => {
                report.left.push((
                    payment_id,
                    "the payment changed while deciding; looked at again next round".into(),
                ));
                continue;
            }
            Err(e) => return Err(e),
        }
        tracing::info!(payment_id = %payment_id, email = %email, plan = %plan, "auto-rescued an unmatched charge");
        report.matched.push(payment_id);
    }
    Ok(report)
}
