//! `support reply`: a ready-to-paste answer, rendered from the same
//! situation as the customer's page (`crate::situation`), about the payment
//! the key names — or, for an address, the one that matters most.

use super::find::{self, Customer};
use super::SupportError;
use crate::plans::Plans;
use crate::situation::{self, until, Situation};
use crate::store::PgEventStore;
use payledger_projections::read::{customer_status, ReadModels};

pub async fn reply_for(
    store: &PgEventStore,
    plans: &Plans,
    key: &str,
    support_name: &str,
) -> Result<String, SupportError> {
    let customer = find::find(store, None, key).await?;
    let zone = crate::config::timezone().map_err(|e| SupportError::Invalid(e.to_string()))?;
    let read = ReadModels::of(store);
    let Some(reference) = chosen(&customer, key) else {
        return Ok(without_payment(&customer, support_name, zone));
    };
    let Some(row) = customer_status::by_reference(&read, &reference).await? else {
        return Ok(without_payment(&customer, support_name, zone));
    };
    let ctx = situation::load::Context {
        plans,
        support_email: "",
        now: store.clock().now(),
        pending_window: crate::config::pending_window()
            .map_err(|e| SupportError::Invalid(e.to_string()))?,
        zone,
    };
    let (situation, details) = situation::load::situation_of(&read, &row, &ctx).await?;
    Ok(letter(&situation.reply(&details), support_name))
}

fn letter(body: &str, support_name: &str) -> String {
    format!("Hello,\n\n{body}\n\n{support_name}")
}

/// The payment the key names (a reference, checkout or payment id); for an
/// address, the one that gives access, else the latest charged, else the
/// latest.
fn chosen(c: &Customer, key: &str) -> Option<String> {
    let key = key.trim();
    let named = c.payments.iter().find(|p| {
        p.reference.eq_ignore_ascii_case(key)
            || p.checkout_id.as_deref() == Some(key)
            || p.payment_id.as_deref() == Some(key)
    });
    let best = || {
        c.payments
            .iter()
            .rev()
            .find(|p| p.situation.is_some_and(Situation::has_access))
            .or_else(|| {
                c.payments
                    .iter()
                    .rev()
                    .find(|p| p.situation.is_some_and(Situation::charged))
            })
            .or_else(|| c.payments.last())
    };
    named.or_else(best).map(|p| p.reference.clone())
}

/// No payment on record: a grant says so; otherwise we ask for what finds
/// the charge at the processor.
fn without_payment(c: &Customer, support_name: &str, zone: chrono_tz::Tz) -> String {
    if let Some(s) = c.subscription.as_ref().filter(|s| s.activation == "grant") {
        return letter(
            &format!(
                "You have access to {} as a courtesy, with nothing to pay, until {}.",
                s.plan,
                until(s.period_end, zone)
            ),
            support_name,
        );
    }
    letter(
        "Thank you for writing to us. We could not find a payment for this address yet. \
         Could you send us the date of the charge, the amount, and the last four digits of the card \
         (never the full number)? With those we can find it at our payment processor within a day.\n\n\
         If you were charged, your money is safe and you will not need to pay again.",
        support_name,
    )
}
