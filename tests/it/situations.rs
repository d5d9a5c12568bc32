//! Every customer situation, built from its facts and read back through the
//! real HTTP server: the status page, `/api/access`, `support reply` and
//! the support queue must tell one story — the same situation, the same
//! access answer, the same amounts, and no promise of a person that the
//! queue does not keep.

use crate::common::ledger::*;
use crate::common::shop::*;
use crate::common::*;
use crate::pages::page;
use payledger::situation::Situation;
use payledger::store::PgEventStore;
use payledger_events::{ChargeSource, ChargeSucceeded, CheckoutSessionExpired, Currency, StreamId};
use payledger_projections::customer_status::reference_code;
use std::sync::Arc;

fn charge_now(
    payment: &str,
    checkout: Option<uuid::Uuid>,
    email: &str,
) -> (StreamId, payledger_events::EventData) {
    let e = ChargeSucceeded {
        payment_id: payment.into(),
        charge_id: None,
        session_id: None,
        checkout_reference: checkout.map(|c| c.to_string()),
        customer_email: Some(email.into()),
        amount: 24900,
        currency: Currency::new("usd").unwrap(),
        paid_at: chrono::Utc::now(),
        source: ChargeSource::Webhook,
        invoice_id: None,
    };
    (StreamId::payment(payment), fact(e, payment))
}

pub(crate) struct Built {
    pub want: Situation,
    pub email: String,
    pub reference: String,
}

/// One customer per situation, each with their own address and payment.
pub(crate) async fn build(
    store: &PgEventStore,
    an_hour_ago: &PgEventStore,
    want: Situation,
) -> Built {
    let name = want.name().replace('_', "");
    let email = format!("{name}@example.com");
    let pi = format!("pi_{name}");
    let checkout = uuid::Uuid::new_v4();
    let paid = || {
        vec![
            checkout_started(checkout, &email, 24900),
            charge(&pi, Some(checkout), Some(&email), 24900, 0),
        ]
    };
    let by_checkout = reference_code("checkout", &checkout.to_string());
    let by_payment = reference_code("payment", &pi);
    let mut reference = by_checkout.clone();
    match want {
        Situation::AwaitingPayment => {
            append(store, vec![checkout_started(checkout, &email, 24900)]).await
        }
        Situation::NotYetRecorded => {
            append(an_hour_ago, vec![checkout_started(checkout, &email, 24900)]).await
        }
        Situation::NotCompleted => {
            let expired = CheckoutSessionExpired {
                session_id: format!("cs_{name}"),
                checkout_reference: Some(checkout.to_string()),
            };
            append(
                store,
                vec![
                    checkout_started(checkout, &email, 24900),
                    (
                        StreamId::checkout(checkout),
                        fact(expired, &format!("cs_{name}")),
                    ),
                ],
            )
            .await
        }
        Situation::PaidConfirming => {
            append(store, vec![charge_now(&pi, None, &email)]).await;
            reference = by_payment;
        }
        Situation::Active => append(store, paid()).await,
        Situation::ActiveAfterDelay => {
            append(store, vec![charge(&pi, None, Some(&email), 24900, 0)]).await;
            append(store, vec![matched(&pi, &email)]).await;
            reference = by_payment;
        }
        Situation::PartiallyRefunded => {
            append(store, paid()).await;
            append(store, vec![refunded(&pi, &format!("re_{name}"), 5000)]).await;
        }
        Situation::Refunded => {
            append(store, paid()).await;
            append(store, vec![refunded(&pi, &format!("re_{name}"), 24900)]).await;
        }
        Situation::WithAPerson => {
            append(store, vec![charge(&pi, None, Some(&email), 24900, 0)]).await;
            reference = by_payment;
        }
        Situation::PaidNotActive => {
            append(store, vec![charge(&pi, None, Some(&email), 24900, 0)]).await;
            append(store, vec![resolved(&format!("unmatched_charge:{pi}"))]).await;
            reference = by_payment;
        }
        Situation::DuplicateCharge => {
            append(store, paid()).await;
            let second = format!("{pi}_again");
            append(
                store,
                vec![charge(&second, Some(checkout), Some(&email), 24900, 5)],
            )
            .await;
            reference = reference_code("payment", &second);
        }
        Situation::DisputeOpen => {
            append(store, paid()).await;
            append(store, vec![dispute_opened(&pi, &format!("dp_{name}"))]).await;
        }
        Situation::PastDue
        | Situation::Canceled
        | Situation::Ended
        | Situation::RenewalNotApplied => {
            use payledger_events::Period;
            use payledger_testkit::renewal_history as r;
            let sub = format!("sub_{name}");
            let now = chrono::Utc::now();
            // A year and an hour ago for the renewals, a day ago otherwise.
            let renewing = matches!(want, Situation::PastDue | Situation::RenewalNotApplied);
            let anchor = if renewing {
                now - chrono::Duration::days(365) - chrono::Duration::hours(1)
            } else {
                now - chrono::Duration::days(1)
            };
            let first = r::paid_as(
                &sub,
                Some(checkout),
                anchor,
                Period::Year,
                1,
                24900,
                &email,
                ChargeSource::Webhook,
            )
            .unwrap();
            let mut facts = vec![
                r::renewing_checkout(checkout, &email, "annual").unwrap(),
                r::started(&sub, Some(checkout), anchor).unwrap(),
                first,
            ];
            facts.push(match want {
                Situation::PastDue => r::failed(
                    &sub,
                    2,
                    1,
                    now - chrono::Duration::hours(1),
                    Some(now + chrono::Duration::days(3)),
                )
                .unwrap(),
                Situation::Canceled => r::cancel_scheduled(
                    &sub,
                    now - chrono::Duration::hours(1),
                    payledger_events::period_end(anchor, Period::Year, 1),
                )
                .unwrap(),
                Situation::Ended => r::ended(
                    &sub,
                    now - chrono::Duration::hours(1),
                    "cancellation_requested",
                )
                .unwrap(),
                _ => r::paid_as(
                    &sub,
                    Some(checkout),
                    anchor,
                    Period::Year,
                    2,
                    24900,
                    &email,
                    ChargeSource::Reconciliation,
                )
                .unwrap(),
            });
            append(store, facts).await;
        }
        Situation::DisputeWon | Situation::DisputeLost => {
            append(store, paid()).await;
            let dp = format!("dp_{name}");
            let how = if want == Situation::DisputeWon {
                "won"
            } else {
                "lost"
            };
            append(
                store,
                vec![dispute_opened(&pi, &dp), dispute_closed(&pi, &dp, how)],
            )
            .await;
        }
    }
    Built {
        want,
        email,
        reference,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_situation_tells_one_story_on_the_page_the_api_and_the_reply() {
    let t = TestDb::new().await;
    let store = t.store();
    let an_hour_ago = PgEventStore::new(
        t.db.pool.clone(),
        Arc::new(payledger::clock::ManualClock::new(
            chrono::Utc::now() - chrono::Duration::hours(1),
        )),
    );
    let mut built = vec![];
    for s in Situation::ALL {
        built.push(build(&store, &an_hour_ago, *s).await);
    }
    project_everything(&t.db.pool).await;
    let shop = open_shop_with(t.db.pool.clone(), false, |_| {}, axum::Router::new()).await;
    let plans = payledger::plans::Plans::parse(PLANS, "plans.toml").unwrap();
    let queue = payledger::support::queue::queue(
        &payledger_projections::read::ReadModels::new(t.db.pool.clone()),
        &plans,
        false,
        chrono::Utc::now(),
    )
    .await
    .unwrap();

    let mut problems = vec![];
    for b in &built {
        let name = b.want.name();
        let (status, page, _) = page(&format!("{}/status/{}", shop.base, b.reference)).await;
        let shown = page
            .split("data-situation=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        if status != 200 || shown != name {
            problems.push(format!("{name}: the page shows {shown} ({status})"));
            continue;
        }
        let access: serde_json::Value = http()
            .get(format!("{}/api/access?email={}", shop.base, b.email))
            .bearer_auth("token-for-tests")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if access["active"].as_bool() != Some(b.want.has_access()) {
            problems.push(format!(
                "{name}: the page says access {}, the API {access}",
                b.want.has_access()
            ));
        }
        let reply = payledger::support::reply::reply_for(&store, &plans, &b.reference, "Sam")
            .await
            .unwrap();
        let text = page;
        // The same amount in both voices, or in neither.
        let amount = "249.00 USD";
        if text.contains(amount) != reply.contains(amount) {
            problems.push(format!(
                "{name}: amount on the page {} but in the reply {}",
                text.contains(amount),
                reply.contains(amount)
            ));
        }
        if b.want == Situation::PartiallyRefunded
            && !(text.contains("50.00 USD") && reply.contains("50.00 USD"))
        {
            problems.push(format!(
                "{name}: the refunded 50.00 USD is not in both: {reply}"
            ));
        }
        // A person is promised exactly when the queue holds the payment.
        let in_queue = queue.iter().any(|q| {
            q.customer_email.as_deref() == Some(b.email.as_str()) && q.status.as_str() != "resolved"
        });
        let promised = text.contains("A person on our team")
            || reply.contains("I am activating")
            || reply.contains("I am refunding");
        if promised != b.want.promises_a_person() || (promised && !in_queue) {
            problems.push(format!(
                "{name}: promises a person {promised}, in the queue {in_queue}"
            ));
        }
        if !reply.contains(&b.reference) && b.want != Situation::NotCompleted {
            problems.push(format!(
                "{name}: the reply does not quote {}: {reply}",
                b.reference
            ));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
