//! The payment rules every projection shares (docs/projections.md): how a
//! charge is matched to a checkout, when it is a duplicate or a mismatch,
//! when it activates. `Ledger::track` updates the ledger's rows and says what
//! changed; each projection turns the changes into its own rows.

use crate::states::{DisputeState, LedgerPaymentState};
use crate::table::{Db, Table};
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Transaction;
use payledger_events::{ChargeSucceeded, DomainEvent, InvoicePaid, Period, RecordedEvent};
use tokio_postgres::Error;

pub const SCHEMA_SQL: &str = include_str!("ledger.sql");

/// The event types the payment rules apply; `track` of any other changes
/// nothing. A shared ledger applies exactly these (a type missing here
/// would make every scenario's shared fold differ from its private one).
pub const TYPES: &[&str] = &[
    "CheckoutStarted",
    "ChargeSucceeded",
    "InvoicePaid",
    "ChargeMatched",
    "ChargeRefunded",
    "DisputeOpened",
    "DisputeClosed",
];

/// A second charge for the same email and plan within this window is a
/// duplicate, not a renewal.
pub const DUPLICATE_WINDOW_HOURS: i64 = 24;

/// The processor's `billing_reason` of a subscription's first invoice.
pub const FIRST_INVOICE: &str = "subscription_create";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Checkout,
    Rescue,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Checkout => "checkout",
            Activation::Rescue => "rescue",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LedgerChange {
    /// The payment now grants access to `email`'s account.
    Activated {
        payment_id: String,
        email: String,
        plan: String,
        activation: Activation,
        /// True when the activation came after the customer's normal path
        /// (reconciliation found the charge, or a rescue): they get the
        /// rescue email.
        late: bool,
        paid_at: DateTime<Utc>,
        money: Money,
        /// How long the period it buys lasts (the checkout's plan; a year
        /// when no checkout says).
        period: Period,
    },
    Unmatched {
        payment_id: String,
        email: Option<String>,
        money: Money,
    },
    Duplicate {
        payment_id: String,
        email: Option<String>,
        money: Money,
        of_payment: String,
    },
    AmountMismatch {
        payment_id: String,
        email: Option<String>,
        money: Money,
        expected: Money,
    },
    /// A payment that was unmatched, duplicate or mismatched is settled.
    Settled { payment_id: String },
    Refunded {
        payment_id: String,
        refund_id: String,
        email: Option<String>,
        money: Money,
        fully: bool,
        charge_seen: bool,
    },
    /// A charge arrived for a payment that so far only had refunds: they
    /// can be announced now that the customer's address is known.
    ChargeAfterRefund {
        payment_id: String,
        refund_ids: Vec<String>,
        email: Option<String>,
        /// The refunds add up to the whole charge.
        fully: bool,
    },
    DisputeOpened {
        payment_id: String,
        dispute_id: String,
        email: Option<String>,
        money: Money,
    },
    DisputeClosed {
        payment_id: String,
        dispute_id: String,
        email: Option<String>,
        status: String,
    },
}

crate::record! {
    Checkout in "ledger_checkouts", key(checkout_id), indexes() {
        checkout_id: String = TEXT,
        email: String = TEXT,
        plan: String = TEXT,
        amount: i64 = INT8,
        currency: String = TEXT,
        started_at: DateTime<Utc> = TIMESTAMPTZ,
        paid_payment_id: Option<String> = TEXT,
        period: String = TEXT,
        renews: bool = BOOL,
    }
}

crate::record! {
    Payment in "ledger_payments", key(payment_id), indexes(checkout_reference, account_email) {
        payment_id: String = TEXT,
        charge_seen: bool = BOOL,
        checkout_reference: Option<String> = TEXT,
        customer_email: Option<String> = TEXT,
        amount: Option<i64> = INT8,
        currency: Option<String> = TEXT,
        paid_at: Option<DateTime<Utc>> = TIMESTAMPTZ,
        source: Option<String> = TEXT,
        state: String = TEXT,
        account_email: Option<String> = TEXT,
        plan: Option<String> = TEXT,
        activation: Option<String> = TEXT,
        refunded: i64 = INT8,
        refunds_before_charge: Option<String> = TEXT,
        closed_disputes: Option<String> = TEXT,
        open_disputes: Option<String> = TEXT,
        lost_disputes: Option<String> = TEXT,
    }
}

const BY_REFERENCE: usize = 0;
const BY_ACCOUNT: usize = 1;

impl Payment {
    /// A payment known only from a refund or a match, its charge not seen.
    fn pending(payment_id: &str) -> Payment {
        Payment {
            payment_id: payment_id.into(),
            charge_seen: false,
            checkout_reference: None,
            customer_email: None,
            amount: None,
            currency: None,
            paid_at: None,
            source: None,
            state: LedgerPaymentState::Pending.as_str().into(),
            account_email: None,
            plan: None,
            activation: None,
            refunded: 0,
            refunds_before_charge: None,
            closed_disputes: None,
            open_disputes: None,
            lost_disputes: None,
        }
    }

    /// Whose payment it is: the account it was matched to, else the email
    /// the processor gave.
    pub fn email(&self) -> Option<String> {
        self.account_email
            .clone()
            .or_else(|| self.customer_email.clone())
    }

    fn money(&self) -> Money {
        Money {
            amount: self.amount.unwrap_or(0),
            currency: self.currency.clone().unwrap_or_default(),
        }
    }
}

/// The checkouts and payments a projection reasons about: each projection's
/// own copy, or one shared by a group of projections (`crate::group`).
#[derive(Default)]
pub struct Ledger {
    pub checkouts: Table<Checkout>,
    pub payments: Table<Payment>,
    /// Shared: the event already tracked and what it changed. A member's
    /// `track` of that event answers this instead of tracking it again.
    tracked: Option<(i64, Vec<LedgerChange>)>,
}

/// The ledger's tables are never public: a replay never asks for them.
impl crate::table::TableJson for Ledger {
    fn json_of<'a>(
        &'a self,
        _tx: &'a Transaction<'a>,
        _table: &'a str,
    ) -> crate::projection::JsonFuture<'a> {
        Box::pin(async { Ok(None) })
    }
}

impl Ledger {
    pub async fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        futures_util::future::try_join(self.checkouts.flush(tx), self.payments.flush(tx)).await?;
        Ok(())
    }

    pub fn in_memory_only(&mut self) {
        self.checkouts.in_memory_only();
        self.payments.in_memory_only();
    }

    pub fn rehearse(&mut self) {
        self.checkouts.rehearse();
        self.payments.rehearse();
    }

    pub fn wanted_into(&mut self, into: &mut crate::table::Wanted) {
        self.checkouts.wanted_into(into);
        self.payments.wanted_into(into);
    }

    pub async fn prefetch(
        &mut self,
        tx: &Transaction<'_>,
        wanted: &crate::table::Wanted,
    ) -> Result<(), Error> {
        futures_util::future::try_join(
            self.checkouts.prefetch(tx, wanted),
            self.payments.prefetch(tx, wanted),
        )
        .await?;
        Ok(())
    }

    pub fn track_changes(&mut self) {
        self.checkouts.track_changes();
        self.payments.track_changes();
    }

    pub fn set_schema(&mut self, schema: &std::sync::Arc<str>) {
        self.checkouts.set_schema(schema);
        self.payments.set_schema(schema);
    }

    pub fn resident_bytes(&self) -> usize {
        self.checkouts.resident_bytes() + self.payments.resident_bytes()
    }

    pub fn evict(&mut self) {
        self.checkouts.evict();
        self.payments.evict();
    }

    pub fn evict_cold(&mut self) {
        self.checkouts.evict_cold();
        self.payments.evict_cold();
    }

    pub fn snapshot(&self) -> Vec<String> {
        let mut rows = self.checkouts.snapshot();
        rows.extend(self.payments.snapshot());
        rows
    }

    pub async fn copy_into(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        self.checkouts.copy_into(tx).await?;
        self.payments.copy_into(tx).await.map(|_| ())
    }

    /// The email a payment belongs to, if the payment is known.
    pub async fn email_of_payment(
        &mut self,
        db: Db<'_>,
        payment_id: &str,
    ) -> Result<Option<String>, Error> {
        Ok(self
            .payments
            .get(db, payment_id)
            .await?
            .and_then(|p| p.email()))
    }

    /// Applies `event` to the rows and says what changed. A shared ledger
    /// that tracked it already answers what it said then, and from then on
    /// shows the calling projection the rows as they are after it.
    pub async fn track(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<Vec<LedgerChange>, Error> {
        if let Some((position, changes)) = &self.tracked {
            if *position == event.position {
                let changes = changes.clone();
                self.view_before(false);
                return Ok(changes);
            }
        }
        self.apply_rules(db, event, decoded).await
    }

    /// The shared ledger's own application of `event`, before any member
    /// sees it: what each write replaces is remembered, so that a member's
    /// reads before its own `track` see the rows as they were.
    pub async fn track_shared(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), Error> {
        self.tracked = None;
        self.checkouts.record_before();
        self.payments.record_before();
        let changes = self.apply_rules(db, event, decoded).await;
        self.checkouts.stop_recording();
        self.payments.stop_recording();
        self.tracked = Some((event.position, changes?));
        Ok(())
    }

    /// A member is about to apply the event the ledger tracked: until it
    /// calls `track`, it sees the rows as they were before the event.
    pub fn begin_member(&mut self, position: i64) {
        let tracked_it = self.tracked.as_ref().is_some_and(|(p, _)| *p == position);
        self.view_before(tracked_it);
    }

    fn view_before(&mut self, before: bool) {
        self.checkouts.view_before(before);
        self.payments.view_before(before);
    }

    async fn apply_rules(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<Vec<LedgerChange>, Error> {
        match decoded {
            DomainEvent::CheckoutStarted(c) => {
                let id = c.checkout_id.to_string();
                if self.checkouts.get(db, &id).await?.is_none() {
                    self.checkouts.put(Checkout {
                        checkout_id: id.clone(),
                        email: c.email.to_lowercase(),
                        plan: c.plan.clone(),
                        amount: c.amount,
                        currency: c.currency.as_str().into(),
                        started_at: event.recorded_at,
                        paid_payment_id: None,
                        period: c.period.as_str().into(),
                        renews: c.renews,
                    });
                }
                // A charge recorded before its checkout (a restored backup):
                // match it now.
                let mut waiting: Vec<Payment> = self
                    .payments
                    .find(db, BY_REFERENCE, &id)
                    .await?
                    .into_iter()
                    .filter(|p| p.charge_seen && p.state == LedgerPaymentState::Unmatched.as_str())
                    .collect();
                waiting.sort_by(|a, b| (a.paid_at, &a.payment_id).cmp(&(b.paid_at, &b.payment_id)));
                let mut changes = vec![];
                for payment in waiting {
                    changes.push(LedgerChange::Settled {
                        payment_id: payment.payment_id.clone(),
                    });
                    changes.extend(self.match_to_checkout(db, &payment, true).await?);
                }
                Ok(changes)
            }
            DomainEvent::ChargeSucceeded(c) => self.observe_charge(db, c).await,
            DomainEvent::InvoicePaid(i) => self.observe_invoice(db, i).await,
            DomainEvent::ChargeMatched(m) => match self.payments.get(db, &m.payment_id).await? {
                Some(p) if p.charge_seen => {
                    if p.state == LedgerPaymentState::Active.as_str() {
                        return Ok(vec![]);
                    }
                    let mut changes = vec![LedgerChange::Settled {
                        payment_id: m.payment_id.clone(),
                    }];
                    changes.extend(
                        self.activate(
                            db,
                            &m.payment_id,
                            &m.email,
                            &m.plan,
                            Activation::Rescue,
                            true,
                        )
                        .await?,
                    );
                    Ok(changes)
                }
                known => {
                    // Remember the match; it takes effect when the charge arrives.
                    let mut p = known.unwrap_or_else(|| Payment::pending(&m.payment_id));
                    p.account_email = Some(m.email.to_lowercase());
                    p.plan = Some(m.plan.clone());
                    self.payments.put(p);
                    Ok(vec![])
                }
            },
            DomainEvent::ChargeRefunded(r) => {
                let mut p = self
                    .payments
                    .get(db, &r.payment_id)
                    .await?
                    .unwrap_or_else(|| Payment::pending(&r.payment_id));
                p.refunded = p.refunded.saturating_add(r.amount);
                if !p.charge_seen {
                    add_listed(&mut p.refunds_before_charge, &r.refund_id);
                }
                self.payments.put(p.clone());
                Ok(vec![LedgerChange::Refunded {
                    payment_id: r.payment_id.clone(),
                    refund_id: r.refund_id.clone(),
                    email: p.email(),
                    money: Money {
                        amount: r.amount,
                        currency: r.currency.to_string(),
                    },
                    fully: p.charge_seen && p.amount.is_some_and(|a| p.refunded >= a),
                    charge_seen: p.charge_seen,
                }])
            }
            DomainEvent::DisputeOpened(d) => {
                let mut p = self
                    .payments
                    .get(db, &d.payment_id)
                    .await?
                    .unwrap_or_else(|| Payment::pending(&d.payment_id));
                if listed(&p.closed_disputes, &d.dispute_id) {
                    // Delivered after its closing: the dispute is over.
                    return Ok(vec![]);
                }
                if !listed(&p.open_disputes, &d.dispute_id) {
                    add_listed(&mut p.open_disputes, &d.dispute_id);
                    self.payments.put(p);
                }
                Ok(vec![LedgerChange::DisputeOpened {
                    payment_id: d.payment_id.clone(),
                    dispute_id: d.dispute_id.clone(),
                    email: self.email_of_payment(db, &d.payment_id).await?,
                    money: Money {
                        amount: d.amount,
                        currency: d.currency.to_string(),
                    },
                }])
            }
            DomainEvent::DisputeClosed(d) => {
                let mut p = self
                    .payments
                    .get(db, &d.payment_id)
                    .await?
                    .unwrap_or_else(|| Payment::pending(&d.payment_id));
                if !listed(&p.closed_disputes, &d.dispute_id) {
                    add_listed(&mut p.closed_disputes, &d.dispute_id);
                    remove_listed(&mut p.open_disputes, &d.dispute_id);
                    if DisputeState::of_closing(&d.status) == Some(DisputeState::Lost) {
                        add_listed(&mut p.lost_disputes, &d.dispute_id);
                    }
                    self.payments.put(p);
                }
                Ok(vec![LedgerChange::DisputeClosed {
                    payment_id: d.payment_id.clone(),
                    dispute_id: d.dispute_id.clone(),
                    email: self.email_of_payment(db, &d.payment_id).await?,
                    status: d.status.clone(),
                }])
            }
            _ => Ok(vec![]),
        }
    }

    /// A charge the processor reports. The first report of a payment
    /// decides; a charge waiting for its invoice learns its checkout from
    /// the invoice.
    async fn observe_charge(
        &mut self,
        db: Db<'_>,
        c: &ChargeSucceeded,
    ) -> Result<Vec<LedgerChange>, Error> {
        let existing = self.payments.get(db, &c.payment_id).await?;
        // A payment seen without its checkout (waiting for its invoice, or
        // an orphan for now) learns it from a later report that names it.
        let unplaced = |p: &Payment| {
            p.state == LedgerPaymentState::AwaitingInvoice.as_str()
                || p.state == LedgerPaymentState::Unmatched.as_str()
        };
        if existing
            .as_ref()
            .is_some_and(|p| p.charge_seen && !(unplaced(p) && c.checkout_reference.is_some()))
        {
            return Ok(vec![]);
        }
        let was_unmatched = existing
            .as_ref()
            .is_some_and(|p| p.charge_seen && p.state == LedgerPaymentState::Unmatched.as_str());
        let late = c.source != payledger_events::ChargeSource::Webhook;
        let mut recorded = existing.clone().unwrap_or_else(|| Payment {
            state: LedgerPaymentState::Unmatched.as_str().into(),
            ..Payment::pending(&c.payment_id)
        });
        recorded.charge_seen = true;
        recorded.checkout_reference = c.checkout_reference.clone();
        recorded.customer_email = c.customer_email.as_ref().map(|e| e.to_lowercase());
        recorded.amount = Some(c.amount);
        recorded.currency = Some(c.currency.as_str().into());
        recorded.paid_at = Some(c.paid_at);
        recorded.source = Some(format!("{:?}", c.source).to_lowercase());
        let refund_ids: Vec<String> = recorded
            .refunds_before_charge
            .take()
            .map(|ids| ids.split(' ').map(str::to_string).collect())
            .unwrap_or_default();
        self.payments.put(recorded.clone());
        // Refunds that came first are applied after whatever the
        // charge itself causes, as they would have been in order.
        let after_refund = existing
            .as_ref()
            .filter(|p| p.refunded > 0 && !p.charge_seen)
            .map(|p| LedgerChange::ChargeAfterRefund {
                payment_id: c.payment_id.clone(),
                refund_ids,
                email: recorded.email(),
                fully: p.refunded >= c.amount,
            });
        let mut changes = vec![];
        if was_unmatched {
            changes.push(LedgerChange::Settled {
                payment_id: c.payment_id.clone(),
            });
        }
        // A match recorded before the charge itself arrived.
        if let Some(prior) = existing.filter(|p| p.plan.is_some()) {
            let email = prior.account_email.unwrap_or_default();
            let plan = prior.plan.unwrap_or_default();
            changes.extend(
                self.activate(db, &c.payment_id, &email, &plan, Activation::Rescue, true)
                    .await?,
            );
            changes.extend(after_refund);
            return Ok(changes);
        }
        if recorded.checkout_reference.is_none() && c.invoice_id.is_some() {
            // An invoice's charge: its invoice's fact says what it pays.
            recorded.state = LedgerPaymentState::AwaitingInvoice.as_str().into();
            self.payments.put(recorded);
            return Ok(after_refund.into_iter().collect());
        }
        changes.extend(self.match_to_checkout(db, &recorded, late).await?);
        if !changes
            .iter()
            .any(|c| matches!(c, LedgerChange::Activated { .. }))
        {
            changes.extend(disputes_again(&recorded, recorded.email()));
        }
        changes.extend(after_refund);
        Ok(changes)
    }

    /// A paid invoice of a subscription. The first one is the checkout's
    /// payment (or, naming no checkout, an orphan); a renewal's access is
    /// the renewal rules' business, and here its payment is accounted for.
    async fn observe_invoice(
        &mut self,
        db: Db<'_>,
        i: &InvoicePaid,
    ) -> Result<Vec<LedgerChange>, Error> {
        let payment_id = i.payment_id.clone().unwrap_or_else(|| i.invoice_id.clone());
        let existing = self.payments.get(db, &payment_id).await?;
        let waiting = existing
            .as_ref()
            .is_some_and(|p| p.state == LedgerPaymentState::AwaitingInvoice.as_str());
        let unmatched = existing
            .as_ref()
            .is_some_and(|p| p.state == LedgerPaymentState::Unmatched.as_str());
        if i.billing_reason == FIRST_INVOICE {
            if waiting && i.checkout_reference.is_none() {
                if let Some(mut p) = existing {
                    p.state = LedgerPaymentState::Unmatched.as_str().into();
                    self.payments.put(p.clone());
                    return Ok(vec![LedgerChange::Unmatched {
                        payment_id,
                        email: p.customer_email.clone(),
                        money: p.money(),
                    }]);
                }
            }
            return self
                .observe_charge(
                    db,
                    &ChargeSucceeded {
                        payment_id,
                        charge_id: None,
                        session_id: None,
                        checkout_reference: i.checkout_reference.clone(),
                        customer_email: i.customer_email.clone(),
                        amount: i.amount,
                        currency: i.currency.clone(),
                        paid_at: i.paid_at,
                        source: i.source,
                        invoice_id: None,
                    },
                )
                .await;
        }
        let renewal = LedgerPaymentState::Renewal.as_str().to_string();
        match existing {
            Some(mut p) if waiting || unmatched => {
                p.state = renewal;
                self.payments.put(p);
                Ok(if unmatched {
                    vec![LedgerChange::Settled { payment_id }]
                } else {
                    vec![]
                })
            }
            Some(_) => Ok(vec![]),
            None => {
                self.payments.put(Payment {
                    charge_seen: true,
                    customer_email: i.customer_email.as_ref().map(|e| e.to_lowercase()),
                    amount: Some(i.amount),
                    currency: Some(i.currency.as_str().into()),
                    paid_at: Some(i.paid_at),
                    source: Some(format!("{:?}", i.source).to_lowercase()),
                    state: renewal,
                    ..Payment::pending(&payment_id)
                });
                Ok(vec![])
            }
        }
    }

    /// Matches a seen charge to its checkout by reference, or leaves it
    /// unmatched.
    async fn match_to_checkout(
        &mut self,
        db: Db<'_>,
        p: &Payment,
        late: bool,
    ) -> Result<Vec<LedgerChange>, Error> {
        let payment_id = p.payment_id.as_str();
        let money = p.money();
        let checkout = match &p.checkout_reference {
            Some(r) => self.checkouts.get(db, r).await?,
            None => None,
        };
        let Some(mut checkout) = checkout else {
            return Ok(vec![LedgerChange::Unmatched {
                payment_id: payment_id.into(),
                email: p.customer_email.clone(),
                money,
            }]);
        };
        let account = checkout.email.clone();
        let plan = checkout.plan.clone();
        if let Some(first) = checkout.paid_payment_id.clone().filter(|f| f != payment_id) {
            return self
                .duplicate(db, payment_id, account, &plan, money, first)
                .await;
        }
        checkout.paid_payment_id = Some(payment_id.into());
        let expected = Money {
            amount: checkout.amount,
            currency: checkout.currency.clone(),
        };
        self.checkouts.put(checkout);
        if expected != money {
            self.set_state(
                db,
                payment_id,
                LedgerPaymentState::Mismatch.as_str(),
                &account,
                &plan,
            )
            .await?;
            return Ok(vec![LedgerChange::AmountMismatch {
                payment_id: payment_id.into(),
                email: Some(account),
                money,
                expected,
            }]);
        }
        if let Some(twin) = self.twin(db, p, &account, &plan).await? {
            return self
                .duplicate(db, payment_id, account, &plan, money, twin)
                .await;
        }
        // Found late (by reconciliation): the customer's normal path
        // failed, and that is what `activation` tells the product's app.
        let activation = if late {
            Activation::Rescue
        } else {
            Activation::Checkout
        };
        self.activate(db, payment_id, &account, &plan, activation, late)
            .await
    }

    /// Marks a payment as a second charge for what `of_payment` paid.
    async fn duplicate(
        &mut self,
        db: Db<'_>,
        payment_id: &str,
        account: String,
        plan: &str,
        money: Money,
        of_payment: String,
    ) -> Result<Vec<LedgerChange>, Error> {
        self.set_state(
            db,
            payment_id,
            LedgerPaymentState::Duplicate.as_str(),
            &account,
            plan,
        )
        .await?;
        Ok(vec![LedgerChange::Duplicate {
            payment_id: payment_id.into(),
            email: Some(account),
            money,
            of_payment,
        }])
    }

    /// The first other active payment of the same account and plan within
    /// the duplicate window before this one, whose money was not returned.
    async fn twin(
        &mut self,
        db: Db<'_>,
        p: &Payment,
        account: &str,
        plan: &str,
    ) -> Result<Option<String>, Error> {
        let Some(paid_at) = p.paid_at else {
            return Ok(None);
        };
        let window_start = paid_at
            .checked_sub_signed(Duration::hours(DUPLICATE_WINDOW_HOURS))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        Ok(self
            .payments
            .find(db, BY_ACCOUNT, account)
            .await?
            .into_iter()
            .filter(|o| {
                // A payment whose money went back (refunded in full, or a
                // lost dispute) paid for nothing: buying again is not a
                // second charge for it.
                let money_returned = o.amount.is_some_and(|a| o.refunded >= a)
                    || o.lost_disputes
                        .as_deref()
                        .is_some_and(|d| !d.trim().is_empty());
                o.plan.as_deref() == Some(plan)
                    && o.state == LedgerPaymentState::Active.as_str()
                    && !money_returned
                    && o.payment_id != p.payment_id
                    && o.paid_at.is_some_and(|t| t >= window_start && t <= paid_at)
            })
            .min_by(|a, b| (a.paid_at, &a.payment_id).cmp(&(b.paid_at, &b.payment_id)))
            .map(|o| o.payment_id))
    }

    async fn set_state(
        &mut self,
        db: Db<'_>,
        payment_id: &str,
        state: &str,
        account: &str,
        plan: &str,
    ) -> Result<(), Error> {
        if let Some(mut p) = self.payments.get(db, payment_id).await? {
            p.state = state.into();
            p.account_email = Some(account.to_lowercase());
            p.plan = Some(plan.into());
            self.payments.put(p);
        }
        Ok(())
    }

    async fn activate(
        &mut self,
        db: Db<'_>,
        payment_id: &str,
        email: &str,
        plan: &str,
        activation: Activation,
        late: bool,
    ) -> Result<Vec<LedgerChange>, Error> {
        let Some(mut p) = self.payments.get(db, payment_id).await? else {
            return Ok(vec![]);
        };
        p.state = LedgerPaymentState::Active.as_str().into();
        p.account_email = Some(email.to_lowercase());
        p.plan = Some(plan.into());
        p.activation = Some(activation.as_str().into());
        self.payments.put(p.clone());
        let period = match &p.checkout_reference {
            Some(r) => self
                .checkouts
                .get(db, r)
                .await?
                .and_then(|c| c.period.parse::<Period>().ok()),
            None => None,
        }
        .unwrap_or_default();
        let mut changes = vec![LedgerChange::Activated {
            payment_id: payment_id.into(),
            email: email.to_lowercase(),
            plan: plan.into(),
            activation,
            late: late || activation == Activation::Rescue,
            paid_at: p.paid_at.unwrap_or_default(),
            money: p.money(),
            period,
        }];
        // A full refund that came before the activation ends it as it
        // would have after (no email: the refund's own was asked for when
        // its charge arrived).
        if p.charge_seen && p.refunded > 0 && p.amount.is_some_and(|a| p.refunded >= a) {
            changes.push(LedgerChange::Refunded {
                payment_id: payment_id.into(),
                refund_id: String::new(),
                email: None,
                money: Money {
                    amount: p.refunded,
                    currency: p.currency.clone().unwrap_or_default(),
                },
                fully: true,
                charge_seen: true,
            });
        }
        // A dispute opened, or lost, before the activation applies to it
        // as well.
        changes.extend(disputes_again(&p, Some(email.to_lowercase())));
        Ok(changes)
    }
}

/// The disputes of a payment that arrived before its charge or its
/// activation, announced again so every read model applies them to what
/// exists now.
fn disputes_again(p: &Payment, email: Option<String>) -> Vec<LedgerChange> {
    let mut changes = vec![];
    for dispute_id in p.open_disputes.iter().flat_map(|l| l.split(' ')) {
        changes.push(LedgerChange::DisputeOpened {
            payment_id: p.payment_id.clone(),
            dispute_id: dispute_id.into(),
            email: email.clone(),
            money: p.money(),
        });
    }
    // Every closed dispute, lost or not: a reader that learns of the
    // payment only now must end where one that saw it all along did.
    for dispute_id in p.closed_disputes.iter().flat_map(|l| l.split(' ')) {
        let lost = listed(&p.lost_disputes, dispute_id);
        changes.push(LedgerChange::DisputeClosed {
            payment_id: p.payment_id.clone(),
            dispute_id: dispute_id.into(),
            email: email.clone(),
            status: if lost {
                DisputeState::Lost
            } else {
                DisputeState::Won
            }
            .as_str()
            .into(),
        });
    }
    changes
}

/// Whether a space-separated list of processor ids (they hold no spaces)
/// names `id`.
fn listed(list: &Option<String>, id: &str) -> bool {
    list.as_deref()
        .is_some_and(|l| l.split(' ').any(|x| x == id))
}

fn remove_listed(list: &mut Option<String>, id: &str) {
    let rest: Vec<&str> = list
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty() && *x != id)
        .collect();
    *list = (!rest.is_empty()).then(|| rest.join(" "));
}

fn add_listed(list: &mut Option<String>, id: &str) {
    if listed(list, id) {
        return;
    }
    let mut ids = list.take().unwrap_or_default();
    if !ids.is_empty() {
        ids.push(' ');
    }
    ids.push_str(id);
    *list = Some(ids);
}

/// The outbox key of the email a change asks for, and its kind.
pub fn email_for(change: &LedgerChange) -> Option<(String, &'static str, String)> {
    match change {
        LedgerChange::Activated {
            payment_id,
            email,
            late,
            ..
        } => {
            let kind = if *late {
                "rescue_confirmation"
            } else {
                "confirmation"
            };
            Some((format!("{kind}:{payment_id}"), kind, email.clone()))
        }
        LedgerChange::Refunded {
            refund_id,
            email: Some(email),
            charge_seen: true,
            ..
        } => Some((
            format!("refund_confirmation:{refund_id}"),
            "refund_confirmation",
            email.clone(),
        )),
        LedgerChange::DisputeOpened {
            dispute_id,
            email: Some(email),
            ..
        } => Some((
            format!("dispute_notice:{dispute_id}"),
            "dispute_notice",
            email.clone(),
        )),
        LedgerChange::DisputeClosed {
            dispute_id,
            email: Some(email),
            status,
            ..
        } => {
            let kind = match DisputeState::of_closing(status)? {
                DisputeState::Won => "dispute_won",
                DisputeState::Lost => "dispute_lost",
                DisputeState::Open => return None,
            };
            Some((format!("{kind}:{dispute_id}"), kind, email.clone()))
        }
        _ => None,
    }
}
