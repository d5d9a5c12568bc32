//! `support reply`: a ready-to-paste answer for the customer's state, with
//! their amount, date and reference filled in (docs/communication.md argues
//! the wording).

use super::find::Customer;
use super::queue::amount_text;
use payledger_projections::states::PaymentState;

pub fn reply(c: &Customer, support_name: &str) -> String {
    let paid = c
        .payments
        .iter()
        .rev()
        .find(|p| matches!(p.state, PaymentState::Active | PaymentState::Refunded))
        .or_else(|| c.payments.last());
    let Some(p) = paid else {
        return format!(
            "Hello,\n\nThank you for writing to us. We could not find a payment for this address yet. \
             Could you send us the date of the charge, the amount, and the last four digits of the card \
             (never the full number)? With those we can find it at our payment processor within a day.\n\n\
             If you were charged, your money is safe and you will not need to pay again.\n\n{support_name}"
        );
    };
    let amount = amount_text(p.amount, p.currency.as_deref());
    let date = p
        .paid_at
        .map(|d| d.format("%-d %B %Y").to_string())
        .unwrap_or_else(|| "the day you paid".into());
    let until = c
        .subscription
        .as_ref()
        .map(|s| s.period_end.format("%-d %B %Y").to_string())
        .unwrap_or_default();
    let rescued = c
        .subscription
        .as_ref()
        .is_some_and(|s| s.activation == "rescue");
    match p.state {
        PaymentState::Active if rescued => format!(
            "Hello,\n\nYour payment of {amount} on {date} reached us, but a fault on our side kept your account \
             from being activated at the time. I have fixed it: your access is active now, until {until}. \
             You were charged once, and there is nothing you need to do. I'm sorry for the worry.\n\n\
             Your payment reference is {}. You will also get an email with the receipt.\n\n{support_name}",
            p.reference
        ),
        PaymentState::Active => format!(
            "Hello,\n\nYour payment of {amount} on {date} went through and your access is active until {until}. \
             Your payment reference is {}; the receipt was emailed to this address (please check your spam folder \
             if you cannot find it — we can send it again).\n\n{support_name}",
            p.reference
        ),
        PaymentState::Refunded => format!(
            "Hello,\n\nWe have refunded your payment of {amount} from {date} (reference {}). Refunds take 5 to 10 \
             business days to appear on your statement, depending on your bank.\n\n{support_name}",
            p.reference
        ),
        _ => format!(
            "Hello,\n\nThank you for your patience. We can see your payment of {amount} from {date} (reference {}), \
             and your money is safe: you do not need to pay again. A person on our team is activating your account \
             and will write to you within one business day. If you paid more than once, tell us and we will refund \
             the extra charge.\n\n{support_name}",
            p.reference
        ),
    }
}
