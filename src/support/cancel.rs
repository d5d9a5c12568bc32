//! `payledger support cancel <email|subscription id> [--now] [--refund-last]`
//! (spec §12): cancels a renewing plan at the processor — at the end of
//! what was paid unless `--now` — with the processor's idempotency keys, and
//! records what the processor answered at once, so the customer's page and
//! `/api/access` do not wait for the webhook.

use super::actions::{refund, Outcome};
use super::SupportError;
use crate::processor::client::ProcessorClient;
use crate::store::{EventStore, ExpectedVersion, PgEventStore};
use payledger_events::{Actor, EventData, Metadata};
use payledger_projections::read::{subscriptions, ReadModels};
use payledger_projections::states::SubscriptionStatus;
use payledger_stripe::lifecycle::facts_of_subscription;

pub struct CancelRequest<'a> {
    /// A customer's email or the processor's subscription id (`sub_…`).
    pub key: &'a str,
    pub now: bool,
    pub refund_last: bool,
}

pub async fn cancel(
    store: &PgEventStore,
    processor: &ProcessorClient,
    request: CancelRequest<'_>,
    by: &Actor,
    confirm: &mut dyn FnMut(&str) -> bool,
) -> Result<Outcome, SupportError> {
    let read = ReadModels::of(store);
    let key = request.key.trim();
    let row = if super::looks_like_email(key) {
        subscriptions::by_email(&read, &key.to_lowercase()).await?
    } else {
        subscriptions::by_subscription(&read, key).await?
    };
    let Some(row) = row else {
        return Err(SupportError::NotFound(format!(
            "no access is recorded for {key:?} (give the customer's email or the processor's subscription id, sub_…)"
        )));
    };
    let Some(subscription_id) = row.subscription_id.clone() else {
        return Err(SupportError::Refused(format!(
            "{} has a one-time plan, which does not renew: there is nothing to cancel (to give the money back: payledger support refund {})",
            row.email,
            row.payment_id.as_deref().unwrap_or("<payment id>")
        )));
    };
    if row.status == SubscriptionStatus::Ended {
        return Ok(Outcome {
            changed: false,
            message: format!("already done: {subscription_id} of {} has ended", row.email),
        });
    }
    if row.status == SubscriptionStatus::Canceled && !request.now && !request.refund_last {
        return Ok(Outcome {
            changed: false,
            message: format!(
                "already done: {subscription_id} of {} ends on {} and will not renew",
                row.email,
                row.period_end.format("%Y-%m-%d")
            ),
        });
    }
    let when = if request.now {
        "now (access ends now)".to_string()
    } else {
        format!(
            "at the end of the paid period ({}); access stays until then",
            row.period_end.format("%Y-%m-%d %H:%M UTC")
        )
    };
    let refund_words = match (&row.payment_id, request.refund_last) {
        (Some(p), true) => format!(", and refund its last payment {p}"),
        (None, true) => {
            return Err(SupportError::Refused(format!(
                "{subscription_id} has no recorded payment to refund"
            )))
        }
        _ => String::new(),
    };
    if !confirm(&format!(
        "cancel {subscription_id} of {} {when}{refund_words}",
        row.email
    )) {
        return Ok(Outcome {
            changed: false,
            message: "nothing done".into(),
        });
    }
    let idempotency = format!(
        "cancel-{subscription_id}-{}",
        if request.now { "now" } else { "at-period-end" }
    );
    let answered = processor
        .cancel_subscription(&subscription_id, request.now, &idempotency)
        .await?;
    let now = store.clock().now();
    let facts = facts_of_subscription(&answered, now, false).map_err(SupportError::Invalid)?;
    // The processor acted on this request. Its own callbacks may have
    // recorded the facts first (the same ids): that is no reason to say
    // nothing was done.
    let changed = true;
    for fact in facts {
        let data = EventData::for_processor_fact(
            &fact.event,
            &fact.object_id,
            Metadata::new(uuid::Uuid::new_v4(), by.clone(), "support"),
        )?;
        store
            .append_to_stream(fact.stream, ExpectedVersion::Any, vec![data])
            .await?;
    }
    let mut message = format!("done: cancelled {subscription_id} of {} {when}", row.email);
    if let (true, Some(payment)) = (request.refund_last, &row.payment_id) {
        let refunded = refund(
            store,
            processor,
            payment,
            "cancelled with a refund of the last payment",
            None,
            by,
            &mut |_| true,
        )
        .await?;
        message.push_str(&format!("; {}", refunded.message));
    }
    Ok(Outcome { changed, message })
}
