//! The renewal rules (spec §12, docs/projections.md): what a processor
//! subscription's facts mean for access. Access comes from money — each
//! paid invoice is one period, and nothing else extends it; a failed
//! renewal is `past_due` while the processor retries; a cancellation or the
//! end of the subscription stops renewals and ends access at the end of
//! what was paid. The standing is recomputed from what is stored each time,
//! so the facts may arrive in any order, any number of times.

use crate::ledger::Ledger;
use crate::states::SubscriptionStatus;
use crate::table::{Db, Table};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use payledger_events::DomainEvent;
use tokio_postgres::Error;

pub const SCHEMA_SQL: &str = include_str!("renewals.sql");

/// The facts of a subscription's lifecycle: what every projection that
/// keeps the renewal rules must see.
pub const LIFECYCLE: &[&str] = &[
    "SubscriptionStarted",
    "InvoicePaid",
    "InvoicePaymentFailed",
    "SubscriptionCancellationScheduled",
    "SubscriptionCancellationUndone",
    "SubscriptionEnded",
    "SubscriptionPlanChanged",
    "PlanOffered",
];

/// How long a renewing subscription keeps access past the end of what was
/// paid while its renewal is due: the processor charges a renewal within
/// about an hour of the period's end, and payledger asks it before letting
/// access end (spec §12).
pub const RENEWAL_GRACE_HOURS: i64 = 24;

crate::record! {
    RenewalSubscription in "renewal_subscriptions", key(subscription_id), indexes(checkout_reference) {
        subscription_id: String = TEXT,
        started: bool = BOOL,
        checkout_reference: Option<String> = TEXT,
        customer_email: Option<String> = TEXT,
        paid_from: Option<DateTime<Utc>> = TIMESTAMPTZ,
        paid_until: Option<DateTime<Utc>> = TIMESTAMPTZ,
        paid_invoices: Option<String> = TEXT,
        last_payment_id: Option<String> = TEXT,
        cancel_requested_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        cancel_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        undone_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        ended_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        ended_reason: Option<String> = TEXT,
        failing_invoice: Option<String> = TEXT,
        failed_attempt: i32 = INT4,
        next_attempt: Option<DateTime<Utc>> = TIMESTAMPTZ,
        unannounced: Option<String> = TEXT,
        price_id: Option<String> = TEXT,
        price_changed_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
    }
}

crate::record! {
    RenewalPrice in "renewal_prices", key(price_id), indexes() {
        price_id: String = TEXT,
        plan: String = TEXT,
    }
}

const BY_CHECKOUT: usize = 0;

impl RenewalSubscription {
    fn new(subscription_id: &str) -> Self {
        RenewalSubscription {
            subscription_id: subscription_id.into(),
            started: false,
            checkout_reference: None,
            customer_email: None,
            paid_from: None,
            paid_until: None,
            paid_invoices: None,
            last_payment_id: None,
            cancel_requested_at: None,
            cancel_at: None,
            undone_at: None,
            ended_at: None,
            ended_reason: None,
            failing_invoice: None,
            failed_attempt: 0,
            next_attempt: None,
            unannounced: None,
            price_id: None,
            price_changed_at: None,
        }
    }

    fn paid(&self, invoice_id: &str) -> bool {
        self.paid_invoices
            .as_deref()
            .is_some_and(|l| l.split(' ').any(|i| i == invoice_id))
    }

    /// A cancellation asked for after the last undo.
    fn cancel_scheduled(&self) -> bool {
        match (self.cancel_requested_at, self.undone_at) {
            (Some(asked), Some(undone)) => asked > undone,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Where one subscription stands for its customer's access.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub subscription_id: String,
    pub email: String,
    pub plan: String,
    pub status: SubscriptionStatus,
    pub paid_from: DateTime<Utc>,
    /// The end of access: the end of what was paid, or earlier when the
    /// subscription ended earlier (cancelled now).
    pub access_until: DateTime<Utc>,
    /// When the processor will charge next; `None` once it will not.
    pub renews_at: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    /// Past due: until when the processor keeps retrying; active: until when
    /// the renewal is expected.
    pub grace_until: Option<DateTime<Utc>>,
    pub last_payment_id: Option<String>,
}

/// The standing of a subscription whose customer and plan are known and
/// which has at least one paid period; pure, so any order of the same
/// facts gives the same standing.
pub fn standing_of(s: &RenewalSubscription, email: &str, plan: &str) -> Option<Standing> {
    let (paid_from, paid_until) = (s.paid_from?, s.paid_until?);
    let status = if s.ended_at.is_some() {
        SubscriptionStatus::Ended
    } else if s.cancel_scheduled() {
        SubscriptionStatus::Canceled
    } else if s.failing_invoice.is_some() {
        SubscriptionStatus::PastDue
    } else {
        SubscriptionStatus::Active
    };
    let access_until = s.ended_at.map_or(paid_until, |e| e.min(paid_until));
    let renews = matches!(
        status,
        SubscriptionStatus::Active | SubscriptionStatus::PastDue
    );
    Some(Standing {
        subscription_id: s.subscription_id.clone(),
        email: email.to_lowercase(),
        plan: plan.into(),
        status,
        paid_from,
        access_until,
        renews_at: renews.then_some(paid_until),
        cancel_at_period_end: status == SubscriptionStatus::Canceled,
        grace_until: match status {
            SubscriptionStatus::PastDue => s.next_attempt,
            SubscriptionStatus::Active => {
                paid_until.checked_add_signed(chrono::Duration::hours(RENEWAL_GRACE_HOURS))
            }
            _ => None,
        },
        last_payment_id: s.last_payment_id.clone(),
    })
}

/// The subscription a lifecycle fact is about.
pub fn subscription_of(fact: &DomainEvent) -> Option<&str> {
    Some(match fact {
        DomainEvent::SubscriptionStarted(e) => &e.subscription_id,
        DomainEvent::InvoicePaid(e) => &e.subscription_id,
        DomainEvent::InvoicePaymentFailed(e) => &e.subscription_id,
        DomainEvent::SubscriptionCancellationScheduled(e) => &e.subscription_id,
        DomainEvent::SubscriptionCancellationUndone(e) => &e.subscription_id,
        DomainEvent::SubscriptionEnded(e) => &e.subscription_id,
        DomainEvent::SubscriptionPlanChanged(e) => &e.subscription_id,
        _ => return None,
    })
}

/// Adds an id to a space-separated list, kept sorted so the same facts in
/// any order store the same row.
fn add_listed(list: &mut Option<String>, id: &str) {
    let mut ids: Vec<&str> = list.as_deref().map_or(vec![], |l| l.split(' ').collect());
    ids.push(id);
    ids.sort_unstable();
    *list = Some(ids.join(" "));
}

#[derive(Default)]
pub struct Renewals {
    pub subscriptions: Table<RenewalSubscription>,
    /// Which plan a processor price is (`PlanOffered`).
    pub prices: Table<RenewalPrice>,
}

impl crate::table::TableJson for Renewals {
    fn json_of<'a>(
        &'a self,
        _tx: &'a Transaction<'a>,
        _table: &'a str,
    ) -> crate::projection::JsonFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

impl Renewals {
    pub async fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        self.subscriptions.flush(tx).await?;
        self.prices.flush(tx).await
    }

    pub fn in_memory_only(&mut self) {
        self.subscriptions.in_memory_only();
        self.prices.in_memory_only();
    }

    pub fn rehearse(&mut self) {
        self.subscriptions.rehearse();
        self.prices.rehearse();
    }

    pub fn wanted_into(&mut self, into: &mut crate::table::Wanted) {
        self.subscriptions.wanted_into(into);
        self.prices.wanted_into(into);
    }

    pub async fn prefetch(
        &mut self,
        tx: &Transaction<'_>,
        wanted: &crate::table::Wanted,
    ) -> Result<(), Error> {
        self.subscriptions.prefetch(tx, wanted).await?;
        self.prices.prefetch(tx, wanted).await
    }

    pub fn track_changes(&mut self) {
        self.subscriptions.track_changes();
        self.prices.track_changes();
    }

    pub fn set_schema(&mut self, schema: &std::sync::Arc<str>) {
        self.subscriptions.set_schema(schema);
        self.prices.set_schema(schema);
    }

    pub fn resident_bytes(&self) -> usize {
        self.subscriptions.resident_bytes() + self.prices.resident_bytes()
    }

    pub fn evict(&mut self) {
        self.subscriptions.evict();
        self.prices.evict();
    }

    pub fn evict_cold(&mut self) {
        self.subscriptions.evict_cold();
        self.prices.evict_cold();
    }

    pub fn snapshot(&self) -> Vec<String> {
        let mut rows = self.subscriptions.snapshot();
        rows.extend(self.prices.snapshot());
        rows
    }

    pub async fn copy_into(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        self.subscriptions.copy_into(tx).await?;
        self.prices.copy_into(tx).await.map(|_| ())
    }

    /// The paid invoices of a subscription.
    pub async fn paid_invoices(
        &mut self,
        db: Db<'_>,
        subscription_id: &str,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .subscriptions
            .get(db, subscription_id)
            .await?
            .and_then(|s| s.paid_invoices)
            .map(|l| l.split(' ').map(str::to_string).collect())
            .unwrap_or_default())
    }

    /// Keeps an email owed to a subscription's customer who is not known
    /// yet (`kind|key|payment`), to ask for once they are.
    pub async fn owe(
        &mut self,
        db: Db<'_>,
        subscription_id: &str,
        owed: &str,
    ) -> Result<(), Error> {
        let mut s = self
            .subscriptions
            .get(db, subscription_id)
            .await?
            .unwrap_or_else(|| RenewalSubscription::new(subscription_id));
        let mut list = s.unannounced.take();
        add_listed(&mut list, owed);
        s.unannounced = list;
        self.subscriptions.put(s);
        Ok(())
    }

    /// The emails owed while the customer was unknown, taken (once).
    pub async fn take_owed(
        &mut self,
        db: Db<'_>,
        subscription_id: &str,
    ) -> Result<Vec<String>, Error> {
        let Some(mut s) = self.subscriptions.get(db, subscription_id).await? else {
            return Ok(vec![]);
        };
        let Some(list) = s.unannounced.take() else {
            return Ok(vec![]);
        };
        self.subscriptions.put(s);
        Ok(list.split(' ').map(str::to_string).collect())
    }

    /// Whether an invoice of a subscription is known to be paid.
    pub async fn invoice_paid(
        &mut self,
        db: Db<'_>,
        subscription_id: &str,
        invoice_id: &str,
    ) -> Result<bool, Error> {
        Ok(self
            .subscriptions
            .get(db, subscription_id)
            .await?
            .is_some_and(|s| s.paid(invoice_id)))
    }

    /// Applies a lifecycle fact; returns the subscription's standing when
    /// the fact changed it and its customer is known.
    pub async fn track(
        &mut self,
        db: Db<'_>,
        ledger: &mut Ledger,
        decoded: &DomainEvent,
    ) -> Result<Option<Standing>, Error> {
        if let DomainEvent::PlanOffered(offer) = decoded {
            self.prices.put(RenewalPrice {
                price_id: offer.price_id.clone(),
                plan: offer.plan.clone(),
            });
            return Ok(None);
        }
        let Some(id) = subscription_of(decoded) else {
            return Ok(None);
        };
        let before = self.subscriptions.get(db, id).await?;
        let mut s = before
            .clone()
            .unwrap_or_else(|| RenewalSubscription::new(id));
        match decoded {
            DomainEvent::SubscriptionStarted(e) => {
                s.started = true;
                s.checkout_reference = s.checkout_reference.take().or(e.checkout_reference.clone());
            }
            DomainEvent::InvoicePaid(e) if !s.paid(&e.invoice_id) => {
                add_listed(&mut s.paid_invoices, &e.invoice_id);
                s.checkout_reference = s.checkout_reference.take().or(e.checkout_reference.clone());
                s.customer_email = e.customer_email.clone().or(s.customer_email.take());
                s.paid_from = Some(
                    s.paid_from
                        .map_or(e.period_start, |f| f.min(e.period_start)),
                );
                if s.paid_until.is_none_or(|u| e.period_end >= u) {
                    s.last_payment_id = e.payment_id.clone().or(s.last_payment_id.take());
                }
                s.paid_until = Some(s.paid_until.map_or(e.period_end, |u| u.max(e.period_end)));
                if s.failing_invoice.as_deref() == Some(e.invoice_id.as_str()) {
                    s.failing_invoice = None;
                    s.failed_attempt = 0;
                    s.next_attempt = None;
                }
            }
            DomainEvent::InvoicePaymentFailed(e) if !s.paid(&e.invoice_id) => {
                let attempt = i32::try_from(e.attempt).unwrap_or(i32::MAX);
                let same = s.failing_invoice.as_deref() == Some(e.invoice_id.as_str());
                if !same || attempt > s.failed_attempt {
                    s.failing_invoice = Some(e.invoice_id.clone());
                    s.failed_attempt = attempt;
                    s.next_attempt = e.next_attempt;
                }
            }
            DomainEvent::SubscriptionCancellationScheduled(e)
                if s.cancel_requested_at.is_none_or(|t| e.requested_at > t) =>
            {
                s.cancel_requested_at = Some(e.requested_at);
                s.cancel_at = Some(e.cancel_at);
            }
            DomainEvent::SubscriptionCancellationUndone(e) => {
                s.undone_at = Some(s.undone_at.map_or(e.undone_at, |u| u.max(e.undone_at)));
            }
            DomainEvent::SubscriptionEnded(e) => {
                s.ended_at = Some(e.ended_at);
                s.ended_reason = e.reason.clone();
            }
            DomainEvent::SubscriptionPlanChanged(e)
                if s.price_changed_at.is_none_or(|t| e.changed_at > t) =>
            {
                s.price_id = Some(e.price_id.clone());
                s.price_changed_at = Some(e.changed_at);
            }
            _ => {}
        }
        if before.as_ref() == Some(&s) {
            return Ok(None);
        }
        self.subscriptions.put(s.clone());
        self.standing(db, ledger, &s.subscription_id).await
    }

    /// The standings of the subscriptions a checkout bought: when the
    /// checkout is recorded after them (a restored backup), they become
    /// someone's access only now.
    pub async fn standings_of_checkout(
        &mut self,
        db: Db<'_>,
        ledger: &mut Ledger,
        checkout_id: &str,
    ) -> Result<Vec<Standing>, Error> {
        let mut standings = vec![];
        for s in self
            .subscriptions
            .find(db, BY_CHECKOUT, checkout_id)
            .await?
        {
            standings.extend(self.standing(db, ledger, &s.subscription_id).await?);
        }
        Ok(standings)
    }

    /// The standing of a subscription, if its customer is known (through
    /// the checkout that bought it) and it has a paid period.
    pub async fn standing(
        &mut self,
        db: Db<'_>,
        ledger: &mut Ledger,
        subscription_id: &str,
    ) -> Result<Option<Standing>, Error> {
        let Some(s) = self.subscriptions.get(db, subscription_id).await? else {
            return Ok(None);
        };
        let Some(reference) = &s.checkout_reference else {
            return Ok(None);
        };
        let Some(checkout) = ledger.checkouts.get(db, reference).await? else {
            return Ok(None);
        };
        // A plan change names a price; the plan it means is the one the
        // plans file offered at that price (the checkout's plan otherwise).
        let plan = match &s.price_id {
            Some(price) => self.prices.get(db, price).await?.map(|p| p.plan),
            None => None,
        }
        .unwrap_or(checkout.plan);
        Ok(standing_of(&s, &checkout.email, &plan))
    }
}
