//! What a renewal email shows (docs/communication.md): gathered from the
//! fact the email is about — found by its deterministic id from the outbox
//! key — and the customer's access row.

use super::sender::{day, money, status_url, SenderConfig, View, UNKNOWN_PLAN};
use crate::store::{PgEventStore, StoreError};
use payledger_events::{deterministic_event_id, DomainEvent};
use payledger_projections::read::{customer_status, subscriptions, ReadModels};

/// `None` when `key` is not a renewal email's.
pub(super) async fn view_of(
    store: &PgEventStore,
    read: &ReadModels,
    config: &SenderConfig,
    key: &str,
) -> Result<Option<View>, StoreError> {
    let Some((kind, subject)) = key.split_once(':') else {
        return Ok(None);
    };
    let fact_type = match kind {
        "renewal_receipt" => "InvoicePaid",
        "payment_failed" => "InvoicePaymentFailed",
        "cancellation_confirmed" => "SubscriptionCancellationScheduled",
        "access_ended" => "SubscriptionEnded",
        "renewal_reminder" => "RenewalReminderDue",
        _ => return Ok(None),
    };
    let mut view = View::default();
    let until = |d| crate::situation::until(d, config.zone);
    let email = match store
        .event(deterministic_event_id(fact_type, subject))
        .await?
    {
        Some(DomainEvent::InvoicePaid(i)) => {
            view.amount = money(Some(i.amount), Some(i.currency.to_string()));
            view.paid_on = day(Some(i.paid_at), config.zone);
            view.period_end = until(i.period_end);
            view.reference = i.invoice_id;
            i.customer_email
        }
        Some(DomainEvent::InvoicePaymentFailed(f)) => {
            view.amount = money(Some(f.amount), Some(f.currency.to_string()));
            view.next_attempt = f
                .next_attempt
                .map(|t| day(Some(t), config.zone))
                .unwrap_or_default();
            view.reference = f.invoice_id;
            f.customer_email
        }
        Some(DomainEvent::SubscriptionCancellationScheduled(c)) => {
            view.period_end = until(c.cancel_at);
            view.reference = c.subscription_id;
            None
        }
        Some(DomainEvent::RenewalReminderDue(r)) => {
            view.amount = money(Some(r.amount), Some(r.currency.to_string()));
            // The day it renews, which is also the day paid access runs to.
            view.period_end = day(Some(r.renews_at), config.zone);
            view.reference = r.subscription_id;
            None
        }
        Some(DomainEvent::SubscriptionEnded(e)) => {
            view.period_end = until(e.ended_at);
            view.reference = e.subscription_id;
            None
        }
        _ => None,
    };
    let row = match &email {
        Some(e) => subscriptions::by_email(read, &e.to_lowercase()).await?,
        None => None,
    };
    let row = match row {
        Some(r) => Some(r),
        None => subscriptions::by_subscription(read, &view.reference).await?,
    };
    if let Some(row) = row {
        view.plan = config
            .plans
            .get(&row.plan)
            .map_or(row.plan.clone(), |p| p.name.clone());
        if view.period_end.is_empty() || kind == "payment_failed" {
            // A failed renewal: the access paid so far runs to here.
            view.period_end = until(row.period_end);
        }
        if let Some(latest) = customer_status::by_email(read, &row.email).await?.last() {
            view.status_url = status_url(config, &latest.reference);
        }
    } else {
        view.plan = UNKNOWN_PLAN.into();
    }
    Ok(Some(view))
}
