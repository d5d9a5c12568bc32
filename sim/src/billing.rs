//! The simulator's billing (spec §12): subscriptions and their invoices in
//! the processor's wire format, renewed, retried and cancelled by a clock
//! that moves only when told. Failed renewals are retried 3, 5 and 7 days
//! after the first attempt; after the last failure the subscription ends.

use crate::state::Recorded;
use crate::state::SimState;
use payledger_events::{period_end, Period};
use payledger_stripe::billing::{
    CancellationDetails, Invoice, InvoiceLine, InvoiceParent, InvoicePayment, InvoicePaymentRef,
    LinePeriod, Price, Recurring, StatusTransitions, Subscription, SubscriptionDetails,
    SubscriptionItem,
};
use payledger_stripe::objects::{Expandable, List};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Days after the first failed attempt that the processor tries again.
pub const RETRY_DAYS: [i64; 3] = [3, 5, 7];

/// A recurring price the simulator can bill.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPrice {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub period: Period,
}

/// The prices of `plans.example.toml`, when the simulator is given none.
pub fn default_prices() -> Vec<SimPrice> {
    vec![
        SimPrice {
            id: "price_annual_249".into(),
            amount: 24900,
            currency: "usd".into(),
            period: Period::Year,
        },
        SimPrice {
            id: "price_monthly_25".into(),
            amount: 2500,
            currency: "usd".into(),
            period: Period::Month,
        },
    ]
}

#[derive(Debug, Clone)]
pub struct Failing {
    pub invoice_id: String,
    pub first_attempt: i64,
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct SimSubscription {
    pub object: Subscription,
    pub anchor: i64,
    pub price: SimPrice,
    pub email: Option<String>,
    /// Periods billed since `anchor` (the first invoice is period 1).
    pub billed: u32,
    /// Periods billed before the anchor moved (a price change re-anchors
    /// the periods at the end of the one paid).
    pub billed_before: u32,
    pub failing: Option<Failing>,
}

#[derive(Default)]
pub struct Billing {
    pub prices: Vec<SimPrice>,
    pub customers: Vec<serde_json::Value>,
    /// Customer email → whether later charges decline.
    pub declines: HashMap<String, bool>,
    pub subscriptions: Vec<SimSubscription>,
    pub invoices: Vec<Invoice>,
    // Lookups by id and address, so a burst of 100,000 renewals
    // (`bench renewals`) costs what it costs the processor.
    pub(crate) customer_by_email: HashMap<String, String>,
    pub(crate) subscription_by_id: HashMap<String, usize>,
    pub(crate) invoice_by_id: HashMap<String, usize>,
}

/// What is due next for a subscription, and when.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Due {
    Renew,
    Retry,
    EndAtPeriodEnd,
}

/// A recurring price as the processor shows it on a subscription item.
fn price_object(price: &SimPrice) -> Price {
    Price {
        id: price.id.clone(),
        object: "price".into(),
        unit_amount: Some(price.amount),
        currency: Some(price.currency.clone()),
        recurring: Some(Recurring {
            interval: price.period.as_str().into(),
            interval_count: 1,
        }),
    }
}

fn unix(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp()
}

fn at(t: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default()
}

impl SimSubscription {
    fn period_bounds(&self, n: u32) -> (i64, i64) {
        let anchor = at(self.anchor);
        let start = if n <= 1 {
            self.anchor
        } else {
            unix(period_end(anchor, self.price.period, n - 1))
        };
        (start, unix(period_end(anchor, self.price.period, n)))
    }

    fn due(&self) -> Option<(i64, Due)> {
        if self.object.status == "canceled" {
            return None;
        }
        if let Some(f) = &self.failing {
            let days = RETRY_DAYS.get(usize::try_from(f.attempts).ok()? - 1)?;
            return Some((f.first_attempt + days * 86_400, Due::Retry));
        }
        let (_, end) = self.period_bounds(self.billed);
        if self.object.cancel_at_period_end {
            return Some((end, Due::EndAtPeriodEnd));
        }
        Some((end, Due::Renew))
    }
}

impl SimState {
    pub fn price(&self, id: &str) -> Option<SimPrice> {
        self.billing.prices.iter().find(|p| p.id == id).cloned()
    }

    fn customer_for(&mut self, email: Option<&str>, now: i64) -> String {
        if let Some(id) = email.and_then(|e| self.billing.customer_by_email.get(e)) {
            return id.clone();
        }
        let id = self.new_id("cus");
        if let Some(e) = email {
            self.billing
                .customer_by_email
                .insert(e.to_string(), id.clone());
        }
        self.billing.customers.push(serde_json::json!({
            "id": id, "object": "customer", "email": email, "created": now,
        }));
        id
    }

    fn declines(&self, email: Option<&str>) -> bool {
        email.is_some_and(|e| self.billing.declines.get(&e.to_lowercase()) == Some(&true))
    }

    pub fn set_card(&mut self, email: &str, decline: bool) {
        self.billing.declines.insert(email.to_lowercase(), decline);
    }

    /// Serialised the way the configured API version shows it.
    pub fn subscription_json(&self, s: &Subscription) -> serde_json::Value {
        let mut shown = s.clone();
        if self.modern_shape() {
            shown.current_period_start = None;
            shown.current_period_end = None;
        } else if let Some(items) = shown.items.as_mut() {
            for item in &mut items.data {
                item.current_period_start = None;
                item.current_period_end = None;
            }
        }
        serde_json::to_value(shown).unwrap_or_default()
    }

    pub fn invoice_json(&self, i: &Invoice) -> serde_json::Value {
        let mut shown = i.clone();
        if self.modern_shape() {
            shown.subscription = None;
            shown.subscription_details = None;
            shown.payment_intent = None;
            shown.charge = None;
        } else {
            shown.parent = None;
            shown.payments = None;
        }
        serde_json::to_value(shown).unwrap_or_default()
    }

    fn modern_shape(&self) -> bool {
        self.api_version.as_str() >= "2025"
    }

    /// A new subscription to `price` paid by its first invoice, as a
    /// subscription-mode session's payment makes it. Returns the
    /// subscription, its first invoice and the events.
    pub fn start_subscription(
        &mut self,
        price: &SimPrice,
        email: Option<String>,
        metadata: BTreeMap<String, String>,
        now: i64,
    ) -> Result<(String, String, Option<String>, Vec<Recorded>), String> {
        let customer = self.customer_for(email.as_deref(), now);
        let id = self.new_id("sub");
        let item_id = self.new_id("si");
        let end = unix(period_end(at(now), price.period, 1));
        let object = Subscription {
            id: id.clone(),
            object: "subscription".into(),
            customer: Some(Expandable::Id(customer)),
            status: "active".into(),
            cancel_at_period_end: false,
            cancel_at: None,
            canceled_at: None,
            ended_at: None,
            created: now,
            start_date: Some(now),
            billing_cycle_anchor: Some(now),
            current_period_start: Some(now),
            current_period_end: Some(end),
            items: Some(List {
                object: "list".into(),
                data: vec![SubscriptionItem {
                    id: item_id,
                    price: Some(price_object(price)),
                    current_period_start: Some(now),
                    current_period_end: Some(end),
                }],
                has_more: false,
                url: None,
            }),
            latest_invoice: None,
            metadata: Some(metadata),
            cancellation_details: None,
            livemode: false,
        };
        self.billing
            .subscription_by_id
            .insert(id.clone(), self.billing.subscriptions.len());
        self.billing.subscriptions.push(SimSubscription {
            object: object.clone(),
            anchor: now,
            price: price.clone(),
            email,
            billed: 0,
            billed_before: 0,
            failing: None,
        });
        let created = self.record_event(
            "customer.subscription.created",
            self.subscription_json(&object),
            now,
        );
        let mut events = vec![created];
        let index = self.billing.subscriptions.len() - 1;
        let (invoice, more) = self.bill_next_period(index, now, true)?;
        events.extend(more);
        let payment = self
            .invoice(&invoice)
            .and_then(|i| i.payment_id().map(str::to_string));
        Ok((id, invoice, payment, events))
    }

    /// Opens the invoice of the next period and tries to collect it.
    fn bill_next_period(
        &mut self,
        index: usize,
        now: i64,
        first: bool,
    ) -> Result<(String, Vec<Recorded>), String> {
        let invoice_id = self.new_id("in");
        let (invoice, sub) = {
            let s = self
                .billing
                .subscriptions
                .get_mut(index)
                .ok_or("no such subscription")?;
            s.billed += 1;
            let (start, end) = s.period_bounds(s.billed);
            s.object.current_period_start = Some(start);
            s.object.current_period_end = Some(end);
            if let Some(items) = s.object.items.as_mut() {
                for item in &mut items.data {
                    item.current_period_start = Some(start);
                    item.current_period_end = Some(end);
                }
            }
            s.object.latest_invoice = Some(Expandable::Id(invoice_id.clone()));
            let details = SubscriptionDetails {
                subscription: Some(Expandable::Id(s.object.id.clone())),
                metadata: s.object.metadata.clone(),
            };
            let invoice = Invoice {
                id: invoice_id.clone(),
                object: "invoice".into(),
                customer: s.object.customer.clone(),
                customer_email: s.email.clone(),
                status: Some("open".into()),
                billing_reason: Some(
                    if first {
                        "subscription_create"
                    } else {
                        "subscription_cycle"
                    }
                    .into(),
                ),
                amount_due: s.price.amount,
                amount_paid: 0,
                currency: s.price.currency.clone(),
                created: now,
                attempt_count: 0,
                next_payment_attempt: None,
                // The processor's own quirk: an invoice's period is the one
                // before it; the line says what it pays for.
                period_start: Some(start),
                period_end: Some(start),
                lines: Some(List {
                    object: "list".into(),
                    data: vec![InvoiceLine {
                        id: format!("il_{invoice_id}"),
                        amount: s.price.amount,
                        period: Some(LinePeriod { start, end }),
                    }],
                    has_more: false,
                    url: None,
                }),
                subscription: details.subscription.clone(),
                subscription_details: Some(details.clone()),
                parent: Some(InvoiceParent {
                    subscription_details: Some(details),
                }),
                payment_intent: None,
                charge: None,
                payments: None,
                status_transitions: Some(StatusTransitions::default()),
                hosted_invoice_url: None,
                livemode: false,
            };
            (invoice, s.object.clone())
        };
        self.billing
            .invoice_by_id
            .insert(invoice_id.clone(), self.billing.invoices.len());
        self.billing.invoices.push(invoice);
        let mut events = vec![];
        if !first {
            events.push(self.record_event(
                "customer.subscription.updated",
                self.subscription_json(&sub),
                now,
            ));
        }
        events.extend(self.collect(index, &invoice_id, now)?);
        Ok((invoice_id, events))
    }

    /// One attempt to collect an open invoice with the customer's card.
    fn collect(
        &mut self,
        index: usize,
        invoice_id: &str,
        now: i64,
    ) -> Result<Vec<Recorded>, String> {
        let s = self
            .billing
            .subscriptions
            .get(index)
            .cloned()
            .ok_or("no such subscription")?;
        let first = s.billed + s.billed_before == 1 && s.failing.is_none();
        let mut events = vec![];
        if self.declines(s.email.as_deref()) && !first {
            let attempts = s.failing.as_ref().map_or(1, |f| f.attempts + 1);
            let first_attempt = s.failing.as_ref().map_or(now, |f| f.first_attempt);
            let next = RETRY_DAYS
                .get(usize::try_from(attempts).unwrap_or(usize::MAX) - 1)
                .map(|d| first_attempt + d * 86_400);
            let invoice = self.invoice_mut(invoice_id)?;
            invoice.attempt_count = attempts;
            invoice.next_payment_attempt = next;
            let invoice = invoice.clone();
            events.push(self.record_event(
                "invoice.payment_failed",
                self.invoice_json(&invoice),
                now,
            ));
            let sub = &mut self.billing.subscriptions[index];
            sub.failing = Some(Failing {
                invoice_id: invoice_id.into(),
                first_attempt,
                attempts,
            });
            if next.is_none() {
                events.extend(self.end_subscription(index, now, "payment_failed")?);
            } else if sub.object.status != "past_due" {
                sub.object.status = "past_due".into();
                let object = sub.object.clone();
                events.push(self.record_event(
                    "customer.subscription.updated",
                    self.subscription_json(&object),
                    now,
                ));
            }
            return Ok(events);
        }
        let (charge, pi, charge_events) = self.charge_card(
            s.price.amount,
            &s.price.currency,
            s.email.clone(),
            Some(invoice_id),
            now,
        )?;
        events.extend(charge_events);
        let invoice = self.invoice_mut(invoice_id)?;
        invoice.status = Some("paid".into());
        invoice.amount_paid = invoice.amount_due;
        invoice.attempt_count += 1;
        invoice.next_payment_attempt = None;
        invoice.payment_intent = Some(Expandable::Id(pi.clone()));
        invoice.charge = Some(Expandable::Id(charge));
        invoice.payments = Some(List {
            object: "list".into(),
            data: vec![InvoicePayment {
                id: format!("inpay_{pi}"),
                payment: Some(InvoicePaymentRef {
                    payment_intent: Some(Expandable::Id(pi)),
                    charge: None,
                }),
            }],
            has_more: false,
            url: None,
        });
        invoice.status_transitions = Some(StatusTransitions {
            paid_at: Some(now),
            voided_at: None,
        });
        let invoice = invoice.clone();
        let shown = self.invoice_json(&invoice);
        events.push(self.record_event("invoice.paid", shown.clone(), now));
        events.push(self.record_event("invoice.payment_succeeded", shown, now));
        let sub = &mut self.billing.subscriptions[index];
        let recovered = sub.failing.take().is_some() || sub.object.status == "past_due";
        if recovered {
            sub.object.status = "active".into();
            let object = sub.object.clone();
            events.push(self.record_event(
                "customer.subscription.updated",
                self.subscription_json(&object),
                now,
            ));
        }
        Ok(events)
    }

    pub fn invoice(&self, id: &str) -> Option<&Invoice> {
        let i = *self.billing.invoice_by_id.get(id)?;
        self.billing.invoices.get(i)
    }

    fn invoice_mut(&mut self, id: &str) -> Result<&mut Invoice, String> {
        let i = self.billing.invoice_by_id.get(id).copied();
        i.and_then(|i| self.billing.invoices.get_mut(i))
            .ok_or_else(|| format!("no such invoice: {id}"))
    }

    fn end_subscription(
        &mut self,
        index: usize,
        now: i64,
        reason: &str,
    ) -> Result<Vec<Recorded>, String> {
        let sub = self
            .billing
            .subscriptions
            .get_mut(index)
            .ok_or("no such subscription")?;
        sub.object.status = "canceled".into();
        sub.object.ended_at = Some(now);
        sub.object.canceled_at = sub.object.canceled_at.or(Some(now));
        sub.object.cancellation_details = Some(CancellationDetails {
            reason: Some(reason.into()),
        });
        let object = sub.object.clone();
        Ok(vec![self.record_event(
            "customer.subscription.deleted",
            self.subscription_json(&object),
            now,
        )])
    }

    pub fn subscription_index(&self, id: &str) -> Result<usize, String> {
        self.billing
            .subscription_by_id
            .get(id)
            .copied()
            .ok_or_else(|| format!("No such subscription: '{id}'"))
    }

    /// The subscription moves to `price` from its next renewal on (as with
    /// `proration_behavior=none`): the periods are counted again from the
    /// end of the one paid, in the new price's interval.
    pub fn change_price(
        &mut self,
        index: usize,
        price: SimPrice,
        now: i64,
    ) -> Result<Vec<Recorded>, String> {
        let sub = self
            .billing
            .subscriptions
            .get_mut(index)
            .ok_or("no such subscription")?;
        if sub.object.status == "canceled" {
            return Err(format!("subscription {} is canceled", sub.object.id));
        }
        if sub.price.id == price.id {
            return Ok(vec![]);
        }
        let previous_items = serde_json::to_value(&sub.object.items).map_err(|e| e.to_string())?;
        let previous = serde_json::json!({
            "items": previous_items,
            "plan": {"id": sub.price.id, "object": "plan"},
        });
        let (_, end) = sub.period_bounds(sub.billed);
        sub.billed_before += sub.billed;
        sub.billed = 0;
        sub.anchor = end;
        if let Some(item) = sub.object.items.as_mut().and_then(|i| i.data.first_mut()) {
            item.price = Some(price_object(&price));
        }
        sub.price = price;
        let object = sub.object.clone();
        let event = self.record_event_with_previous(
            "customer.subscription.updated",
            self.subscription_json(&object),
            previous,
            now,
        );
        Ok(vec![event])
    }

    /// The customer (or support) cancels: at the period's end, or now; with
    /// `at_period_end = false` on a scheduled one and `now = false`, the
    /// schedule is withdrawn.
    pub fn cancel_subscription(
        &mut self,
        id: &str,
        at_period_end: bool,
        immediately: bool,
        now: i64,
    ) -> Result<Vec<Recorded>, String> {
        let index = self.subscription_index(id)?;
        if self.billing.subscriptions[index].object.status == "canceled" {
            return Err(format!("subscription {id} is already canceled"));
        }
        if immediately {
            return self.end_subscription(index, now, "cancellation_requested");
        }
        let sub = &mut self.billing.subscriptions[index];
        if sub.object.cancel_at_period_end == at_period_end {
            return Ok(vec![]);
        }
        let previous =
            serde_json::json!({ "cancel_at_period_end": sub.object.cancel_at_period_end });
        sub.object.cancel_at_period_end = at_period_end;
        sub.object.canceled_at = at_period_end.then_some(now);
        sub.object.cancel_at = if at_period_end {
            sub.object.current_period_end
        } else {
            None
        };
        let object = sub.object.clone();
        let event = self.record_event_with_previous(
            "customer.subscription.updated",
            self.subscription_json(&object),
            previous,
            now,
        );
        Ok(vec![event])
    }

    /// The card was updated: the failing invoice is tried again now.
    pub fn retry_now(&mut self, customer_email: &str, now: i64) -> Result<Vec<Recorded>, String> {
        let due: Vec<(usize, String)> = self
            .billing
            .subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.email.as_deref() == Some(customer_email) && s.object.status != "canceled"
            })
            .filter_map(|(i, s)| Some((i, s.failing.as_ref()?.invoice_id.clone())))
            .collect();
        let mut events = vec![];
        for (index, invoice) in due {
            events.extend(self.collect(index, &invoice, now)?);
        }
        Ok(events)
    }

    /// Moves the clock to `target`, doing every renewal, retry and
    /// scheduled cancellation due on the way, in time order.
    pub fn advance_clock(&mut self, target: i64) -> Result<(Vec<Recorded>, Vec<String>), String> {
        let mut events = vec![];
        let mut invoices = vec![];
        // What is due, earliest first; an entry whose subscription has
        // moved on since it was queued is stale and skipped.
        let mut queue: BinaryHeap<Reverse<(i64, usize)>> = self
            .billing
            .subscriptions
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.due().map(|(t, _)| Reverse((t, i))))
            .filter(|Reverse((t, _))| *t <= target)
            .collect();
        while let Some(Reverse((when, index))) = queue.pop() {
            let Some((due_at, due)) = self.billing.subscriptions[index].due() else {
                continue;
            };
            if due_at != when {
                continue;
            }
            self.set_now(when.max(self.now()));
            let now = self.now();
            match due {
                Due::Renew => {
                    let (invoice, more) = self.bill_next_period(index, now, false)?;
                    invoices.push(invoice);
                    events.extend(more);
                }
                Due::Retry => {
                    let invoice = self.billing.subscriptions[index]
                        .failing
                        .as_ref()
                        .map(|f| f.invoice_id.clone())
                        .ok_or("retry without a failing invoice")?;
                    events.extend(self.collect(index, &invoice, now)?);
                    invoices.push(invoice);
                }
                Due::EndAtPeriodEnd => {
                    events.extend(self.end_subscription(index, now, "cancellation_requested")?);
                }
            }
            if let Some((next, _)) = self.billing.subscriptions[index].due() {
                if next <= target {
                    queue.push(Reverse((next, index)));
                }
            }
        }
        self.set_now(target.max(self.now()));
        Ok((events, invoices))
    }
}
