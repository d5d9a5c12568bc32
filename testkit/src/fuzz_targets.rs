//! The fuzz targets: each takes arbitrary bytes and checks what must hold
//! for every input, panicking when it does not. `fuzz/` runs them under
//! libFuzzer (`cargo +nightly fuzz run NAME`); `tests/it/fuzz_smoke.rs` runs
//! them on stable from a fixed seed in CI. Tooling, not production code.

use arbitrary::Unstructured;
use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{
    Actor, ChargeMatched, ChargeRefunded, ChargeSource, ChargeSucceeded, CheckoutStarted, Currency,
    DiscrepancyAcknowledged, DiscrepancyResolved, DisputeClosed, DisputeOpened, DomainEvent,
    EmailFailed, EmailResendRequested, EmailSent, EventData, Metadata, ProcessorDisagreement,
    ProcessorEventConflict, ProcessorEventReceived, RecordedEvent, StatusLinkRequested, StreamId,
    SubscriptionGranted, SubscriptionRevoked,
};
use payledger_stripe::{mapping, signature};
use std::sync::OnceLock;

/// The clock the targets run at (2027-01-15).
pub const NOW: i64 = 1_800_000_000;
const SECRETS: [&str; 2] = ["whsec_old", "whsec_new"];

/// `Stripe-Signature` parsing and checking: no input panics; an accepted
/// header always holds the real MAC of the body at its `t`; a correctly
/// signed header is always accepted, whatever junk entries follow it (up
/// to the cap).
pub fn signature_header(data: &[u8]) {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]).into_owned();
    let body = data.get(split + 1..).unwrap_or_default();
    let secrets: Vec<String> = SECRETS.iter().map(|s| s.to_string()).collect();
    if signature::verify(Some(&header), body, &secrets, NOW).is_ok() {
        let t = header
            .split(',')
            .find_map(|p| p.trim().strip_prefix("t="))
            .and_then(|t| t.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("accepted a header without a t: {header:?}"));
        assert!(
            SECRETS
                .iter()
                .any(|s| header.contains(&signature::signature_hex(body, s, t))),
            "accepted a header that holds no real signature: {header:?}"
        );
    }
    let junk: String = header
        .split(',')
        .filter(|p| !p.trim().starts_with("t=") && !p.trim().starts_with("v1="))
        .take(4)
        .map(|p| format!(",{p}"))
        .collect();
    let signed = format!("{}{junk}", signature::sign(body, SECRETS[1], NOW));
    let junk_is_wellformed = junk.split(',').skip(1).all(|p| p.contains('='));
    if junk_is_wellformed && signed.len() <= signature::MAX_HEADER_BYTES {
        assert_eq!(
            signature::verify(Some(&signed), body, &secrets, NOW),
            Ok(()),
            "refused a correctly signed header: {signed:?}"
        );
    }
}

/// A verified callback body to the events it implies: no input panics or
/// fails to map; the exact bytes are kept; every fact is storable and
/// folds without harm.
pub fn callback_body(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let body = match u.arbitrary::<u8>().unwrap_or(0) % 4 {
        0 => u.take_rest().to_vec(),
        _ => mutated_fixture(&mut u),
    };
    check_mapping(&body);
}

/// What must hold for the mapping of any body.
pub fn check_mapping(body: &[u8]) {
    let now = at(NOW);
    let mapped = mapping::map_callback(body, now).expect("every body maps to something storable");
    assert!(mapped.processor_event_id.len() <= mapping::MAX_ID_CHARS + 40);
    assert!(!mapped.processor_event_id.contains('\0'));
    let mut recorded = vec![];
    for (i, part) in mapped.appends.iter().enumerate() {
        assert!(part.stream.as_str().len() <= mapping::MAX_ID_CHARS + 40);
        for e in &part.events {
            assert_no_nul(&e.payload);
            let event = RecordedEvent {
                position: i as i64 + 1,
                transaction_id: 1,
                stream: part.stream.clone(),
                stream_version: 1,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                payload: e.payload.clone(),
                metadata: e.metadata.clone(),
                recorded_at: now,
            };
            match event.decode().expect("a mapped event decodes") {
                DomainEvent::ProcessorEventReceived(r) => {
                    assert_eq!(
                        mapping::stored_body_bytes(&r),
                        body,
                        "the body was not kept exactly"
                    );
                }
                other => {
                    let fact = mapping::ProcessorFact {
                        stream: part.stream.clone(),
                        object_id: String::from("checked-already"),
                        event: other,
                    };
                    assert_eq!(mapping::check_fact(&fact, now), Ok(()));
                }
            }
            recorded.push(event);
        }
    }
    if let Err(e) = payledger_projections::fold::fold_in_memory(&recorded) {
        panic!("a mapped callback stopped a projection: {e}");
    }
}

fn assert_no_nul(value: &serde_json::Value) {
    match value {
        serde_json::Value::String(s) => assert!(!s.contains('\0'), "NUL in a payload"),
        serde_json::Value::Array(a) => a.iter().for_each(assert_no_nul),
        serde_json::Value::Object(o) => o.values().for_each(assert_no_nul),
        _ => {}
    }
}

/// Any sequence of domain events folds through every projection without a
/// rule failing: every rule is total.
pub fn event_history_fold(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(history) = arbitrary_history(&mut u) else {
        return;
    };
    if let Err(e) = payledger_projections::fold::fold_in_memory(&history) {
        panic!("{e}");
    }
}

fn at(unix: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix, 0).single().unwrap_or_default()
}

/// Real processor events (`shared/stripe/` beside the checkout, or
/// `$PAYLEDGER_SHARED_DIR/stripe/`), plus one of each type payledger maps,
/// so mutation starts from shapes the processor really sends.
pub fn fixtures() -> &'static [serde_json::Value] {
    static FIXTURES: OnceLock<Vec<serde_json::Value>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let mut all = built_in_fixtures();
        // Test support reads its one setting itself: it is not the app.
        let dir = std::env::var_os("PAYLEDGER_SHARED_DIR")
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
            .join("stripe");
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                let parsed = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                if let Some(v) = parsed.filter(|v| v["object"] == "event") {
                    all.push(v);
                }
            }
        }
        all
    })
}

fn built_in_fixtures() -> Vec<serde_json::Value> {
    let event = |kind: &str, object: serde_json::Value| {
        serde_json::json!({"id": format!("evt_{}", kind.replace('.', "_")), "object": "event",
            "api_version": "2025-09-30.clover", "created": NOW - 60, "livemode": false,
            "type": kind, "data": {"object": object}})
    };
    let charge = serde_json::json!({"id": "ch_1", "object": "charge", "amount": 24900,
        "amount_refunded": 0, "currency": "usd", "created": NOW - 60, "paid": true,
        "status": "succeeded", "payment_intent": "pi_1", "metadata": {"payledger_checkout": "c1"},
        "billing_details": {"email": "ann@example.com"},
        "refunds": {"object": "list", "data": [
            {"id": "re_1", "object": "refund", "amount": 5000, "currency": "usd", "created": NOW - 30,
             "status": "succeeded", "charge": "ch_1", "payment_intent": "pi_1"},
            {"id": "re_2", "object": "refund", "amount": 7000, "currency": "usd", "created": NOW - 20,
             "status": "succeeded", "charge": "ch_1", "payment_intent": "pi_1"}]}});
    vec![
        event("charge.succeeded", charge.clone()),
        event("charge.refunded", charge),
        event(
            "checkout.session.completed",
            serde_json::json!({"id": "cs_1", "object": "checkout.session", "amount_total": 24900,
                "currency": "usd", "client_reference_id": "c1", "payment_intent": "pi_1",
                "payment_status": "paid", "status": "complete", "mode": "payment",
                "customer_details": {"email": "ann@example.com"}, "created": NOW - 90}),
        ),
        event(
            "payment_intent.succeeded",
            serde_json::json!({"id": "pi_1", "object": "payment_intent", "amount": 24900,
                "amount_received": 24900, "currency": "usd", "created": NOW - 60,
                "status": "succeeded", "receipt_email": "ann@example.com", "latest_charge": "ch_1"}),
        ),
        event(
            "charge.dispute.created",
            serde_json::json!({"id": "dp_1", "object": "dispute", "amount": 24900, "currency": "usd",
                "charge": "ch_1", "payment_intent": "pi_1", "reason": "fraudulent",
                "status": "needs_response", "created": NOW - 10}),
        ),
    ]
}

/// A real event with one field somewhere inside replaced by a value the
/// processor never sends: a date out of range, a huge or negative amount,
/// an id of thousands of characters or with a NUL, deep nesting, the wrong
/// type, or removed altogether.
fn mutated_fixture(u: &mut Unstructured) -> Vec<u8> {
    let all = fixtures();
    let mut value = all[usize::from(u.arbitrary::<u16>().unwrap_or(0)) % all.len()].clone();
    let rounds = 1 + u.arbitrary::<u8>().unwrap_or(0) % 3;
    for _ in 0..rounds {
        let replacement = strange_value(u);
        mutate_somewhere(&mut value, u, replacement);
    }
    let mut bytes = serde_json::to_vec(&value).unwrap_or_default();
    if u.arbitrary::<u8>().unwrap_or(0) == 7 && !bytes.is_empty() {
        // Now and then, bytes JSON cannot hold: invalid UTF-8 or a NUL.
        let i = usize::from(u.arbitrary::<u16>().unwrap_or(0)) % bytes.len();
        bytes[i] = if u.arbitrary::<bool>().unwrap_or(false) {
            0xff
        } else {
            0
        };
    }
    bytes
}

fn strange_value(u: &mut Unstructured) -> Option<serde_json::Value> {
    use serde_json::json;
    let n = u.arbitrary::<i64>().unwrap_or(0);
    Some(match u.arbitrary::<u8>().unwrap_or(0) % 14 {
        0 => return None,
        1 => json!(n),
        2 => json!(i64::MAX),
        3 => json!(-1),
        4 => json!(0),
        5 => json!(8_210_298_412_800_i64),
        6 => json!(1e300),
        7 => json!("x".repeat(usize::from(u.arbitrary::<u16>().unwrap_or(0)) % 12_000)),
        8 => json!(format!("pi_\u{0}{n}")),
        9 => json!(u.arbitrary::<String>().unwrap_or_default()),
        10 => json!(null),
        11 => {
            let mut v = json!("deep");
            for _ in 0..(u.arbitrary::<u8>().unwrap_or(0) % 100) {
                v = json!({ "a": v });
            }
            v
        }
        12 => json!([n, "two", {"three": 3}]),
        _ => json!(u.arbitrary::<bool>().unwrap_or(false)),
    })
}

/// Walks to a random field and replaces (or, with `None`, removes) it.
fn mutate_somewhere(
    value: &mut serde_json::Value,
    u: &mut Unstructured,
    new: Option<serde_json::Value>,
) {
    let mut here = value;
    loop {
        let keys: Vec<String> = match here {
            serde_json::Value::Object(o) if !o.is_empty() => o.keys().cloned().collect(),
            _ => break,
        };
        let key = &keys[usize::from(u.arbitrary::<u16>().unwrap_or(0)) % keys.len()];
        let descend =
            here[key.as_str()].is_object() && !u.arbitrary::<u8>().unwrap_or(0).is_multiple_of(3);
        if descend {
            here = &mut here[key.as_str()];
            continue;
        }
        if let serde_json::Value::Object(o) = here {
            match new {
                Some(v) => {
                    o.insert(key.clone(), v);
                }
                None => {
                    o.remove(key);
                }
            }
        }
        return;
    }
}

/// Up to 64 events of every type, about a few payments, checkouts and
/// addresses, so that they meet: charges for checkouts, refunds before
/// charges, matches of unknown payments, grants over paid subscriptions,
/// extreme amounts and dates.
pub fn arbitrary_history(u: &mut Unstructured) -> arbitrary::Result<Vec<RecordedEvent>> {
    let n = u.int_in_range(0..=64)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let event = arbitrary_event(u)?;
        let data = EventData::new(
            &event,
            uuid::Uuid::from_u128(u.arbitrary::<u128>()?),
            Metadata::new(uuid::Uuid::nil(), Actor::webhook(), "fuzz"),
        )
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
        out.push(RecordedEvent {
            position: i as i64 + 1,
            transaction_id: 1,
            stream: StreamId::from_stored(format!("fuzz-{i}")),
            stream_version: 1,
            event_id: data.event_id,
            event_type: data.event_type,
            payload: data.payload,
            metadata: data.metadata,
            recorded_at: arbitrary_time(u)?,
        });
    }
    Ok(out)
}

fn pick<'a>(u: &mut Unstructured, from: &[&'a str]) -> arbitrary::Result<&'a str> {
    Ok(from[u.choose_index(from.len())?])
}

fn arbitrary_time(u: &mut Unstructured) -> arbitrary::Result<DateTime<Utc>> {
    Ok(match u.int_in_range(0..=5)? {
        0 => DateTime::<Utc>::MIN_UTC,
        1 => DateTime::<Utc>::MAX_UTC,
        2 => at(0),
        _ => at(NOW + i64::from(u.int_in_range(-400_i32..=400)?) * 86_400),
    })
}

fn arbitrary_amount(u: &mut Unstructured) -> arbitrary::Result<i64> {
    Ok(match u.int_in_range(0..=6)? {
        0 => i64::MAX,
        1 => i64::MIN,
        2 => 0,
        3 => -24900,
        4 => 12000,
        _ => 24900,
    })
}

fn arbitrary_event(u: &mut Unstructured) -> arbitrary::Result<DomainEvent> {
    let payments = ["pi_1", "pi_2", "pi_3", ""];
    let emails = ["ann@example.com", "BEA@example.com", "", "x"];
    let checkouts = [
        "00000000-0000-0000-0000-000000000001",
        "00000000-0000-0000-0000-000000000002",
    ];
    let plans = ["year", "month", ""];
    let currency = Currency::new(pick(u, &["usd", "eur", "jpy"])?)
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    let payment = pick(u, &payments)?.to_string();
    let email = pick(u, &emails)?.to_string();
    let actor = Actor::Support("fuzz".into());
    let checkout = uuid::Uuid::parse_str(pick(u, &checkouts)?).unwrap_or_default();
    let opt = |u: &mut Unstructured, v: String| -> arbitrary::Result<Option<String>> {
        Ok(if u.arbitrary::<bool>()? {
            Some(v)
        } else {
            None
        })
    };
    let key = format!(
        "{}:{payment}",
        pick(
            u,
            &[
                "confirmation",
                "rescue_confirmation",
                "refund_confirmation",
                "status_link"
            ]
        )?
    );
    Ok(match u.int_in_range(0..=19)? {
        0 => CheckoutStarted {
            checkout_id: checkout,
            email,
            plan: pick(u, &plans)?.into(),
            amount: arbitrary_amount(u)?,
            currency,
            period: payledger_events::Period::Year,
            renews: false,
        }
        .into(),
        1..=3 => ChargeSucceeded {
            payment_id: payment,
            charge_id: None,
            session_id: opt(u, "cs_1".into())?,
            checkout_reference: opt(u, checkout.to_string())?,
            customer_email: opt(u, email)?,
            amount: arbitrary_amount(u)?,
            currency,
            paid_at: arbitrary_time(u)?,
            source: ChargeSource::Webhook,
            invoice_id: None,
        }
        .into(),
        4 | 5 => ChargeRefunded {
            payment_id: payment,
            refund_id: pick(u, &["re_1", "re_2"])?.into(),
            amount: arbitrary_amount(u)?,
            currency,
            refunded_at: arbitrary_time(u)?,
            reason: None,
            source: ChargeSource::Webhook,
        }
        .into(),
        6 => DisputeOpened {
            payment_id: payment,
            dispute_id: "dp_1".into(),
            amount: arbitrary_amount(u)?,
            currency,
            reason: None,
            opened_at: arbitrary_time(u)?,
        }
        .into(),
        7 => DisputeClosed {
            payment_id: payment,
            dispute_id: "dp_1".into(),
            status: pick(u, &["won", "lost", "warning_closed", ""])?.into(),
            closed_at: arbitrary_time(u)?,
        }
        .into(),
        8 | 9 => ChargeMatched {
            payment_id: payment,
            email,
            plan: pick(u, &plans)?.into(),
            reason: "fuzz".into(),
            matched_by: actor,
        }
        .into(),
        10 => SubscriptionGranted {
            email,
            plan: pick(u, &plans)?.into(),
            reason: "fuzz".into(),
            granted_by: actor,
        }
        .into(),
        11 => SubscriptionRevoked {
            email,
            reason: "fuzz".into(),
            revoked_by: actor,
        }
        .into(),
        12 => EmailSent {
            email_key: key,
            message_id: "<m@x>".into(),
            attempt: u.arbitrary()?,
        }
        .into(),
        13 => EmailFailed {
            email_key: key,
            attempt: u.arbitrary()?,
            error: "e".into(),
            permanent: u.arbitrary()?,
        }
        .into(),
        14 => EmailResendRequested {
            email_key: key,
            requested_by: actor,
        }
        .into(),
        15 => DiscrepancyAcknowledged {
            discrepancy_id: format!("unmatched_charge:{payment}"),
            note: String::new(),
            acknowledged_by: actor,
        }
        .into(),
        16 => DiscrepancyResolved {
            discrepancy_id: format!("unmatched_charge:{payment}"),
            resolution: "done".into(),
            note: String::new(),
            resolved_by: actor,
        }
        .into(),
        17 => ProcessorEventReceived {
            processor_event_id: "evt_1".into(),
            event_type: "x".into(),
            raw_body: "{}".into(),
            raw_body_base64: None,
            signature_verified: true,
            received_at: arbitrary_time(u)?,
            unparsed_reason: opt(u, "bad".into())?,
        }
        .into(),
        18 => ProcessorDisagreement {
            payment_id: payment,
            kind: pick(u, &["amount_differs", "refunded_at_processor"])?.into(),
            ledger_amount: None,
            ledger_currency: None,
            processor_amount: arbitrary_amount(u)?,
            processor_currency: currency,
            processor_object_id: "ch_1".into(),
            detail: String::new(),
        }
        .into(),
        _ => match u.arbitrary::<bool>()? {
            true => ProcessorEventConflict {
                processor_event_id: "evt_1".into(),
                stored_body_sha256: "a".into(),
                received_body_sha256: "b".into(),
                received_at: arbitrary_time(u)?,
            }
            .into(),
            false => StatusLinkRequested {
                request_id: checkout,
                email,
            }
            .into(),
        },
    })
}
