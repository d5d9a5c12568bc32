//! The simulator's memory: every object it created, in creation order, and
//! the seeded randomness behind ids and faults.

use payledger_stripe::objects::{
    BillingDetails, Charge, CheckoutSession, CustomerDetails, Dispute, Event, EventObject,
    Expandable, List, PaymentIntent, Refund,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The API version the simulator speaks unless told otherwise: the current
/// wire shapes.
pub const DEFAULT_API_VERSION: &str = "2025-09-30.clover";

/// Fault switches, as posted to `/_sim/faults`; every field optional there.
/// A switch it does not know is refused: a misspelt `dorp` would otherwise
/// switch every fault off while the caller believed it on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Probability that an event is never delivered.
    pub drop: f64,
    /// Probability that an event is delivered twice.
    pub duplicate: f64,
    /// Deliver events in a shuffled order (random extra delays).
    pub reorder: bool,
    /// Delay before the first delivery attempt.
    pub delay_ms: u64,
    /// Every delivery attempt fails as if the endpoint were down; retries
    /// go on with backoff.
    pub endpoint_down: bool,
    /// The hosted pay page charges but never redirects back.
    pub no_redirect: bool,
    /// The next N API requests answer 500.
    pub api_errors: u32,
    /// The next N API requests answer 429.
    pub api_rate_limits: u32,
}

/// A session's data that Stripe keeps but does not show on the session.
#[derive(Debug, Clone, Default)]
pub struct SessionExtras {
    pub payment_intent_metadata: BTreeMap<String, String>,
    /// Subscription mode: the recurring price and the subscription's metadata.
    pub price: Option<crate::billing::SimPrice>,
    pub subscription_metadata: BTreeMap<String, String>,
}

/// What a new session is opened with.
#[derive(Debug, Clone, Default)]
pub struct NewSession {
    pub amount: i64,
    pub currency: String,
    pub client_reference_id: Option<String>,
    pub customer_email: Option<String>,
    pub mode: String,
    pub success_url: Option<String>,
    pub cancel_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub payment_intent_metadata: BTreeMap<String, String>,
    pub price: Option<crate::billing::SimPrice>,
    pub subscription_metadata: BTreeMap<String, String>,
}

/// An event as kept: its wire form as text. As a JSON tree an invoice's
/// event is several times its text, and a month-end burst of renewals
/// keeps hundreds of thousands of events.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub created: i64,
    pub event_type: String,
    pub body: Box<str>,
    pub delivered: bool,
    pub attempts: u32,
    /// The `drop` fault took it: it will never be delivered.
    pub dropped: bool,
}

impl StoredEvent {
    /// The event as the processor shows it.
    pub fn wire(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A recorded event, named for delivery (which reads its body when it
/// sends, so a burst waiting to be sent holds only names).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub id: String,
    pub event_type: String,
}

pub struct SimState {
    pub rng: ChaCha8Rng,
    pub faults: Faults,
    pub sessions: Vec<CheckoutSession>,
    pub session_extras: HashMap<String, SessionExtras>,
    pub payment_intents: Vec<PaymentIntent>,
    pub charges: Vec<Charge>,
    pub refunds: Vec<Refund>,
    pub disputes: Vec<Dispute>,
    pub events: Vec<StoredEvent>,
    /// Event id → its place in `events`: delivery marks events by id, and a
    /// month-end burst has hundreds of thousands of them.
    event_index: HashMap<String, usize>,
    /// Idempotency-Key → the response first given for it.
    pub idempotent_responses: HashMap<String, serde_json::Value>,
    pub billing: crate::billing::Billing,
    /// Seconds the simulator's clock is ahead of the machine's: it moves
    /// only when told (`/_sim/clock/advance`), like the processor's test
    /// clocks, and otherwise runs with the machine's.
    pub clock_offset: i64,
    /// The API version whose wire shapes it sends (`2020-03-02`: the
    /// period on the subscription, the subscription on the invoice).
    pub api_version: String,
}

impl SimState {
    pub fn new(seed: u64) -> Self {
        SimState {
            rng: ChaCha8Rng::seed_from_u64(seed),
            faults: Faults::default(),
            sessions: vec![],
            session_extras: HashMap::new(),
            payment_intents: vec![],
            charges: vec![],
            refunds: vec![],
            disputes: vec![],
            events: vec![],
            event_index: HashMap::new(),
            idempotent_responses: HashMap::new(),
            billing: crate::billing::Billing {
                prices: crate::billing::default_prices(),
                ..Default::default()
            },
            clock_offset: 0,
            api_version: DEFAULT_API_VERSION.into(),
        }
    }

    /// The simulator's clock (unix seconds).
    pub fn now(&self) -> i64 {
        chrono::Utc::now().timestamp() + self.clock_offset
    }

    /// Sets the clock (never backwards).
    pub fn set_now(&mut self, t: i64) {
        let wall = chrono::Utc::now().timestamp();
        self.clock_offset = self.clock_offset.max(t - wall);
    }

    /// `cs_test_` + 24 characters: the processor's id shape, from the seed.
    pub fn new_id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let tail: String = (0..24)
            .map(|_| ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("{prefix}_{tail}")
    }

    pub fn stored_event_mut(&mut self, id: &str) -> Option<&mut StoredEvent> {
        let i = *self.event_index.get(id)?;
        self.events.get_mut(i)
    }

    /// The body to send for an event.
    pub fn event_body(&self, id: &str) -> Option<Vec<u8>> {
        let i = *self.event_index.get(id)?;
        self.events.get(i).map(|e| e.body.as_bytes().to_vec())
    }

    pub fn roll(&mut self, probability: f64) -> bool {
        probability > 0.0 && self.rng.random::<f64>() < probability
    }

    /// Opens an unpaid session, as `POST /v1/checkout/sessions` does, and
    /// remembers the metadata its payment intent will carry.
    pub fn open_session(&mut self, new: NewSession, public_url: &str, now: i64) -> CheckoutSession {
        let id = self.new_id("cs_test");
        let session = CheckoutSession {
            id: id.clone(),
            object: "checkout.session".into(),
            amount_total: Some(new.amount),
            currency: Some(new.currency.to_lowercase()),
            client_reference_id: new.client_reference_id,
            customer_details: None,
            customer_email: new.customer_email,
            payment_intent: None,
            payment_status: "unpaid".into(),
            status: Some("open".into()),
            mode: Some(new.mode),
            created: now,
            expires_at: Some(now + 24 * 3600),
            url: Some(format!("{}/pay/{id}", public_url.trim_end_matches('/'))),
            success_url: new.success_url,
            cancel_url: new.cancel_url,
            metadata: Some(new.metadata),
            subscription: None,
            invoice: None,
            livemode: false,
        };
        self.session_extras.insert(
            id,
            SessionExtras {
                payment_intent_metadata: new.payment_intent_metadata,
                price: new.price,
                subscription_metadata: new.subscription_metadata,
            },
        );
        self.sessions.push(session.clone());
        session
    }

    pub fn session_mut(&mut self, id: &str) -> Option<&mut CheckoutSession> {
        // Newest first: the session being paid was almost always just opened.
        self.sessions.iter_mut().rev().find(|s| s.id == id)
    }

    /// Records an event about `object` and returns it for delivery.
    pub fn record_event(
        &mut self,
        event_type: &str,
        object: serde_json::Value,
        created: i64,
    ) -> Recorded {
        self.record_event_as(event_type, object, None, created)
    }

    /// [`Self::record_event`] of an update, with what it changed.
    pub fn record_event_with_previous(
        &mut self,
        event_type: &str,
        object: serde_json::Value,
        previous: serde_json::Value,
        created: i64,
    ) -> Recorded {
        self.record_event_as(event_type, object, Some(previous), created)
    }

    fn record_event_as(
        &mut self,
        event_type: &str,
        object: serde_json::Value,
        previous_attributes: Option<serde_json::Value>,
        created: i64,
    ) -> Recorded {
        let event = Event {
            id: self.new_id("evt"),
            object: "event".into(),
            api_version: Some(self.api_version.clone()),
            created,
            data: EventObject {
                object,
                previous_attributes,
            },
            livemode: false,
            pending_webhooks: Some(1),
            event_type: event_type.into(),
        };
        // A tree of JSON values always serialises.
        let body = serde_json::to_string(&event).unwrap_or_default();
        self.event_index.insert(event.id.clone(), self.events.len());
        self.events.push(StoredEvent {
            id: event.id.clone(),
            created,
            event_type: event.event_type.clone(),
            body: body.into_boxed_str(),
            delivered: false,
            attempts: 0,
            dropped: false,
        });
        Recorded {
            id: event.id,
            event_type: event.event_type,
        }
    }

    /// Takes the customer's money for an open session: payment intent,
    /// charge, the session completed, and the three events that say so.
    pub fn pay_session(
        &mut self,
        session_id: &str,
        email: Option<String>,
        now: i64,
    ) -> Result<Vec<Recorded>, String> {
        let session = self
            .sessions
            .iter()
            .rev()
            .find(|s| s.id == session_id)
            .cloned()
            .ok_or_else(|| format!("no such checkout session: {session_id}"))?;
        if session.payment_status == "paid" {
            return Err(format!("checkout session {session_id} is already paid"));
        }
        if session.status.as_deref() != Some("open") {
            return Err(format!("checkout session {session_id} is not open"));
        }
        let email = email
            .filter(|e| !e.is_empty())
            .or(session.customer_email.clone());
        let extras = self
            .session_extras
            .get(session_id)
            .cloned()
            .unwrap_or_default();
        let mut events = vec![];
        let (subscription, invoice, pi_id) = if let Some(price) = extras.price.clone() {
            let (sub, invoice, pi, more) =
                self.start_subscription(&price, email.clone(), extras.subscription_metadata, now)?;
            events.extend(more);
            (Some(sub), Some(invoice), pi)
        } else {
            let amount = session.amount_total.unwrap_or(0);
            let currency = session.currency.clone().unwrap_or_else(|| "usd".into());
            let (_, pi, more) = self.charge_card_with(
                amount,
                &currency,
                email.clone(),
                None,
                extras.payment_intent_metadata,
                now,
            )?;
            events.extend(more);
            (None, None, Some(pi))
        };
        let session = {
            let s = self.session_mut(session_id).ok_or("session vanished")?;
            s.status = Some("complete".into());
            s.payment_status = "paid".into();
            // Subscription mode: the session names the subscription and its
            // invoice, not a payment.
            s.payment_intent = if subscription.is_some() {
                None
            } else {
                pi_id.map(Expandable::Id)
            };
            s.subscription = subscription.map(Expandable::Id);
            s.invoice = invoice.map(Expandable::Id);
            s.customer_details = Some(CustomerDetails { email, name: None });
            s.clone()
        };
        let object = serde_json::to_value(&session).map_err(|e| e.to_string())?;
        events.push(self.record_event("checkout.session.completed", object, now));
        Ok(events)
    }

    /// Takes money from the customer's card: a payment intent, its charge,
    /// and the two events that say so. Returns the charge and intent ids.
    pub fn charge_card(
        &mut self,
        amount: i64,
        currency: &str,
        email: Option<String>,
        invoice: Option<&str>,
        now: i64,
    ) -> Result<(String, String, Vec<Recorded>), String> {
        self.charge_card_with(amount, currency, email, invoice, BTreeMap::new(), now)
    }

    fn charge_card_with(
        &mut self,
        amount: i64,
        currency: &str,
        email: Option<String>,
        invoice: Option<&str>,
        metadata: BTreeMap<String, String>,
        now: i64,
    ) -> Result<(String, String, Vec<Recorded>), String> {
        let pi_id = self.new_id("pi");
        let ch_id = self.new_id("ch");
        let charge = Charge {
            id: ch_id.clone(),
            object: "charge".into(),
            amount,
            amount_refunded: 0,
            currency: currency.to_string(),
            created: now,
            paid: true,
            refunded: false,
            disputed: false,
            status: Some("succeeded".into()),
            payment_intent: Some(Expandable::Id(pi_id.clone())),
            billing_details: Some(BillingDetails {
                email: email.clone(),
                name: None,
            }),
            receipt_email: email.clone(),
            metadata: Some(metadata.clone()),
            refunds: Some(empty_list(&format!("/v1/charges/{ch_id}/refunds"))),
            invoice: invoice.map(|i| Expandable::Id(i.to_string())),
            livemode: false,
        };
        let pi = PaymentIntent {
            id: pi_id.clone(),
            object: "payment_intent".into(),
            amount,
            amount_received: amount,
            currency: currency.to_string(),
            created: now,
            status: "succeeded".into(),
            receipt_email: email,
            latest_charge: Some(Expandable::Id(ch_id.clone())),
            metadata: Some(metadata),
            invoice: invoice.map(|i| Expandable::Id(i.to_string())),
        };
        self.charges.push(charge.clone());
        self.payment_intents.push(pi.clone());
        let mut events = vec![];
        for (kind, object) in [
            ("charge.succeeded", serde_json::to_value(&charge)),
            ("payment_intent.succeeded", serde_json::to_value(&pi)),
        ] {
            let object = object.map_err(|e| e.to_string())?;
            events.push(self.record_event(kind, object, now));
        }
        Ok((ch_id, pi_id, events))
    }
}

pub fn empty_list<T>(url: &str) -> List<T> {
    List {
        object: "list".into(),
        data: vec![],
        has_more: false,
        url: Some(url.into()),
    }
}
