use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// A stream id: `<category>-<key>`. Constructors are the only way the
/// application names streams, so a typo cannot create a stray stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// A checkout's stream.
    pub fn checkout(checkout_id: Uuid) -> Self {
        StreamId(format!("checkout-{checkout_id}"))
    }
    /// Keyed by the processor's payment id (payment intent, or charge when a
    /// charge has no intent).
    pub fn payment(payment_id: &str) -> Self {
        StreamId(format!("payment-{payment_id}"))
    }
    /// Keyed by the processor's checkout session id, for session facts that
    /// carry no payment (expired, payment failed).
    pub fn processor_session(session_id: &str) -> Self {
        StreamId(format!("session-{session_id}"))
    }
    /// Emails are case-insensitive in practice; one customer, one stream.
    pub fn account(email: &str) -> Self {
        StreamId(format!("account-{}", email.trim().to_lowercase()))
    }
    /// One processor subscription's lifecycle: started, invoices, cancellation.
    pub fn subscription(subscription_id: &str) -> Self {
        StreamId(format!("subscription-{subscription_id}"))
    }
    /// A plan's pairings with processor prices (`PlanOffered`).
    pub fn plan(plan_id: &str) -> Self {
        StreamId(format!("plan-{plan_id}"))
    }
    /// An endpoint of the product's application (spec §13).
    pub fn app_webhook_endpoint(endpoint_id: &str) -> Self {
        StreamId(format!("app-webhook-{endpoint_id}"))
    }
    /// One outgoing email's stream.
    pub fn email(email_id: Uuid) -> Self {
        StreamId(format!("email-{email_id}"))
    }
    /// One outbox row's delivery history, e.g. `email-confirmation:pi_1`.
    pub fn outbox(email_key: &str) -> Self {
        StreamId(format!("email-{email_key}"))
    }
    /// A discrepancy's stream.
    pub fn discrepancy(discrepancy_id: &str) -> Self {
        StreamId(format!("discrepancy-{discrepancy_id}"))
    }
    /// One processor event's stream (its verbatim callback).
    pub fn processor_event(processor_event_id: &str) -> Self {
        StreamId(format!("processor-event-{processor_event_id}"))
    }
    /// A processor object reconciliation could not read.
    pub fn processor_object(object_id: &str) -> Self {
        StreamId(format!("processor-object-{object_id}"))
    }
    /// One reconciliation run's stream.
    pub fn reconciliation(run_id: Uuid) -> Self {
        StreamId(format!("reconciliation-{run_id}"))
    }
    /// Scheduled runs (completed and failed) in order: the schedule's cursor.
    pub fn reconciliation_schedule() -> Self {
        StreamId("reconciliation-schedule".into())
    }
    /// One status-link request's stream.
    pub fn status_request(request_id: Uuid) -> Self {
        StreamId(format!("status-request-{request_id}"))
    }

    /// For reading back what the store holds; the application names new
    /// streams through the constructors above.
    pub fn from_stored(raw: String) -> Self {
        StreamId(raw)
    }

    /// The stream id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the first `-` (`payment`, `checkout`, …).
    pub fn category(&self) -> &str {
        const CATEGORIES: [&str; 10] = [
            "processor-event",
            "subscription",
            "status-request",
            "reconciliation",
            "discrepancy",
            "checkout",
            "payment",
            "session",
            "account",
            "email",
        ];
        CATEGORIES
            .iter()
            .find(|c| {
                self.0.len() > c.len()
                    && self.0.starts_with(*c)
                    && self.0.as_bytes()[c.len()] == b'-'
            })
            .copied()
            .unwrap_or("")
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_carry_their_category() {
        assert_eq!(StreamId::payment("pi_1").as_str(), "payment-pi_1");
        assert_eq!(StreamId::payment("pi_1").category(), "payment");
        assert_eq!(
            StreamId::processor_event("evt_1").category(),
            "processor-event"
        );
        assert_eq!(
            StreamId::account(" Ann@Example.com ").as_str(),
            "account-ann@example.com"
        );
    }
}
