//! What each situation says, in every voice: the status page, the line of
//! a status email, and support's reply. One `match` per voice over the same
//! situations, with the same amounts and dates filled in.

use super::Situation;
use chrono::{DateTime, Utc};
use payledger_events::Money;

/// The amounts, dates and names a text may quote, already formatted.
#[derive(Debug, Clone, Default)]
pub struct Details {
    pub reference: String,
    pub plan: String,
    /// What was charged ("249.00 USD"), or a stand-in ("your payment").
    pub paid: String,
    /// What went back so far, when anything did.
    pub refunded: Option<String>,
    /// What was kept (paid − refunded), when anything went back.
    pub net: Option<String>,
    pub paid_on: Option<String>,
    pub started_on: String,
    /// Until when the customer has access, from this payment or another.
    pub access_until: Option<String>,
    /// The customer's address, masked for a page anyone with the link sees.
    pub masked_email: String,
    pub support_email: String,
}

impl Details {
    pub fn money(
        amount: Option<i64>,
        currency: Option<&str>,
        refunded: i64,
    ) -> (String, Option<String>, Option<String>) {
        let paid = Money::from_parts(amount, currency);
        let shown = paid
            .as_ref()
            .map_or_else(|| "your payment".to_string(), |m| m.to_string());
        if refunded <= 0 {
            return (shown, None, None);
        }
        let back = Money::from_parts(Some(refunded), currency).map(|m| m.to_string());
        let net = Money::from_parts(amount.map(|a| a - refunded), currency).map(|m| m.to_string());
        (shown, back, net)
    }
}

/// A day as texts show it, in the zone customers are told dates in.
pub fn day(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone).format("%-d %B %Y").to_string()
}

/// The moment access ends, as texts show it: the day, the time and the
/// zone, so it agrees with `/api/access`'s `period_end` to the minute.
pub fn until(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .format("%-d %B %Y, %H:%M %Z")
        .to_string()
}

/// One row of the receipt a page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub label: &'static str,
    pub value: String,
}

/// The status page for a situation: the heading, the paragraphs, what to
/// hold on to.
#[derive(Debug, Clone)]
pub struct Page {
    /// The page's kind for styling and tests (`data-state`).
    pub state: &'static str,
    pub heading: String,
    pub paragraphs: Vec<String>,
    pub receipt: Vec<Receipt>,
    /// What to do next, shown after the receipt.
    pub next: Vec<String>,
    /// The one sentence shown in bold, if any.
    pub warning: Option<String>,
    /// Refresh by itself (only while the answer may change in seconds).
    pub refresh: bool,
    /// Offer to start a new checkout.
    pub start_again: bool,
    /// Offer the processor's billing page, to update the card.
    pub update_card: bool,
}

fn receipt(d: &Details) -> Vec<Receipt> {
    let mut rows = vec![
        Receipt {
            label: "Plan",
            value: d.plan.clone(),
        },
        Receipt {
            label: "Amount paid",
            value: d.paid.clone(),
        },
    ];
    if let (Some(back), Some(net)) = (&d.refunded, &d.net) {
        rows.push(Receipt {
            label: "Refunded",
            value: back.clone(),
        });
        rows.push(Receipt {
            label: "Kept",
            value: net.clone(),
        });
    }
    if let Some(day) = &d.paid_on {
        rows.push(Receipt {
            label: "Paid on",
            value: day.clone(),
        });
    }
    rows.push(Receipt {
        label: "Payment reference",
        value: d.reference.clone(),
    });
    if let Some(day) = &d.access_until {
        rows.push(Receipt {
            label: "Access until",
            value: day.clone(),
        });
    }
    rows
}

const DONT_PAY_AGAIN: &str = "Please don't pay again.";

impl Situation {
    /// The status page.
    pub fn page(self, d: &Details, refresh_seconds: u32) -> Page {
        let paid_on = d
            .paid_on
            .clone()
            .unwrap_or_else(|| "the day you paid".into());
        let until = d.access_until.clone();
        let mut page = Page {
            state: "needs_attention",
            heading: String::new(),
            paragraphs: vec![],
            receipt: vec![],
            next: vec![],
            warning: None,
            refresh: false,
            start_again: false,
            update_card: false,
        };
        let write_to = format!(
            "If you want to reach us, write to {} and mention your reference code {}.",
            d.support_email, d.reference
        );
        match self {
            Situation::AwaitingPayment | Situation::PaidConfirming => {
                page.state = "pending";
                page.heading = "We're confirming your payment".into();
                page.paragraphs = vec![
                    match self {
                        Situation::PaidConfirming => format!("We have your payment of {} from {paid_on} and are connecting it to your account. This usually takes a minute.", d.paid),
                        _ => "Your payment may still be arriving. This usually takes a few seconds.".into(),
                    },
                    format!("This page refreshes itself every {refresh_seconds} seconds. You can also close it: we will email you at {} as soon as it is confirmed.", d.masked_email),
                ];
                page.warning = Some(format!(
                    "{DONT_PAY_AGAIN} If you were charged, your payment is safe."
                ));
                page.refresh = true;
            }
            Situation::NotYetRecorded => {
                page.state = "not_recorded";
                page.heading = "Your payment hasn't reached us yet".into();
                page.paragraphs = vec![
                    "Your payment has not reached our records yet. If you were charged, your money is safe: our payment processor has it.".into(),
                    format!("We check with our payment processor every few minutes and will email you at {} as soon as it arrives. If you don't hear from us within a day, write to {} and mention your reference code {}.", d.masked_email, d.support_email, d.reference),
                ];
                page.warning = Some(DONT_PAY_AGAIN.into());
            }
            Situation::NotCompleted => {
                page.state = "not_completed";
                page.heading = "This checkout was not completed".into();
                page.paragraphs = vec![
                    "This checkout was not completed, and you were not charged for it.".into(),
                ];
                page.start_again = true;
            }
            Situation::Active | Situation::ActiveAfterDelay | Situation::DisputeWon => {
                page.state = "active";
                page.heading = "You're in".into();
                page.paragraphs = vec![match self {
                    Situation::ActiveAfterDelay => format!("Your payment of {} arrived on {paid_on}, but a fault on our side kept your account from being activated then. It is active now — we're sorry for the wait.", d.paid),
                    Situation::DisputeWon => format!("The dispute about your payment of {} was settled, and your access is active again.", d.paid),
                    _ => "Your payment went through. Your access is active.".into(),
                }];
                page.receipt = receipt(d);
                page.next.push(format!(
                    "Sign in with {}. We email you this receipt too; keep it for your records.",
                    d.masked_email
                ));
            }
            Situation::PartiallyRefunded => {
                page.state = "active";
                page.heading = "You're in".into();
                page.paragraphs = vec![
                    format!(
                        "We refunded {} of your payment of {}; your access stays active{}. Refunds take 5 to 10 business days to show on your statement.",
                        d.refunded.clone().unwrap_or_default(),
                        d.paid,
                        until.as_ref().map(|u| format!(" until {u}")).unwrap_or_default()
                    ),
                ];
                page.receipt = receipt(d);
            }
            Situation::Refunded => {
                page.state = "refunded";
                page.heading = "Your payment was refunded".into();
                page.paragraphs = vec![format!(
                    "Your payment of {} was refunded (paid on {paid_on}). Refunds take 5 to 10 business days to show on your statement.",
                    d.paid
                )];
                if let Some(u) = until {
                    page.paragraphs.push(format!(
                        "Your access continues until {u} from your other payment."
                    ));
                }
            }
            Situation::WithAPerson => {
                page.heading = "A person is looking at your payment".into();
                page.paragraphs = vec![
                    format!("We have your payment of {} from {paid_on}, but your access is not active yet.", d.paid),
                    format!("A person on our team is on it and will email you at {} within one business day.", d.masked_email),
                    write_to,
                ];
                page.warning = Some("You don't need to pay again.".into());
            }
            Situation::PaidNotActive => {
                page.heading = "We have your payment; please write to us".into();
                page.paragraphs = vec![
                    format!("We have your payment of {} from {paid_on}, but it is not connected to an account.", d.paid),
                    format!("Please write to {} and mention your reference code {}; we answer within one business day.", d.support_email, d.reference),
                ];
                page.warning = Some("You don't need to pay again.".into());
            }
            Situation::DuplicateCharge => {
                page.state = "duplicate";
                page.heading = "You paid twice: we're refunding this payment".into();
                page.paragraphs = vec![
                    format!("This payment of {} from {paid_on} was a second one for a checkout that was already paid.", d.paid),
                    format!(
                        "Your access comes from your first payment{}. A person on our team will refund this one and email you at {} within one business day.",
                        until.as_ref().map(|u| format!(" and is active until {u}")).unwrap_or_default(),
                        d.masked_email
                    ),
                ];
                page.warning = Some("You don't need to do anything.".into());
            }
            Situation::DisputeOpen => {
                page.state = "disputed";
                page.heading = "Your bank is disputing this payment".into();
                page.paragraphs = vec![
                    format!("Your bank told us that your payment of {} from {paid_on} is disputed, and took the money back while it decides. Access paid by it is paused until then.", d.paid),
                    "Banks usually decide within a few weeks; we will email you when it is settled.".into(),
                    format!("If the dispute is a mistake, tell your bank, and write to {} with your reference code {}.", d.support_email, d.reference),
                ];
            }
            Situation::DisputeLost => {
                page.state = "ended";
                page.heading = "Your bank returned this payment to you".into();
                page.paragraphs = vec![
                    format!("The dispute about your payment of {} from {paid_on} ended with your bank returning the money to you, so the access it paid for has ended.", d.paid),
                    "You can buy access again from our home page whenever you like.".into(),
                ];
            }
            Situation::PastDue => {
                page.state = "past_due";
                page.heading = "Your renewal payment didn't go through".into();
                page.paragraphs = vec![
                    "We tried to renew your plan, and your card was declined. Your access continues while our payment processor tries again over the next days.".into(),
                    "To keep it without a gap, update your card: the button below takes you to our payment processor's secure page.".into(),
                ];
                page.warning = Some("You have not been charged for this renewal.".into());
                page.update_card = true;
            }
            Situation::Canceled => {
                page.state = "active";
                page.heading = "You're in, until your plan ends".into();
                page.paragraphs = vec![format!(
                    "Your plan is cancelled: it will not renew, and you will not be charged again. Your access continues{}.",
                    until.as_ref().map(|u| format!(" until {u}")).unwrap_or_default()
                )];
                page.receipt = receipt(d);
            }
            Situation::Ended => {
                page.state = "ended";
                page.heading = "Your plan has ended".into();
                page.paragraphs = vec![
                    "Your plan has ended, and you will not be charged again.".into(),
                    "You can buy access again from our home page whenever you like.".into(),
                ];
                page.start_again = true;
            }
            Situation::RenewalNotApplied => {
                page.state = "active";
                page.heading = "You're in".into();
                page.paragraphs = vec![format!(
                    "Your plan renewed. The renewal reached our records late, so your account may briefly have looked unpaid; it is applied now and your access continues{}. You were charged once for it.",
                    until.as_ref().map(|u| format!(" until {u}")).unwrap_or_default()
                )];
                page.receipt = receipt(d);
            }
        }
        page
    }

    /// One line about this payment in a status email.
    pub fn email_line(self, d: &Details) -> String {
        match self {
            Situation::AwaitingPayment => "checkout started, no payment confirmed yet".into(),
            Situation::NotYetRecorded => "no payment has reached us yet".into(),
            Situation::NotCompleted => "checkout not completed, not charged".into(),
            Situation::PaidConfirming => format!("paid {}, being confirmed", d.paid),
            Situation::Active | Situation::ActiveAfterDelay | Situation::DisputeWon => {
                format!("paid {}, access active", d.paid)
            }
            Situation::PartiallyRefunded => format!(
                "paid {}, {} refunded, access active",
                d.paid,
                d.refunded.clone().unwrap_or_default()
            ),
            Situation::Refunded => format!("{} refunded", d.paid),
            Situation::WithAPerson => format!("paid {}, a person is activating it", d.paid),
            Situation::PaidNotActive => format!("paid {}, not active: please write to us", d.paid),
            Situation::DuplicateCharge => format!("paid twice; this {} will be refunded", d.paid),
            Situation::DisputeOpen => format!("{} disputed by your bank, access paused", d.paid),
            Situation::DisputeLost => format!("{} returned by your bank, access ended", d.paid),
            Situation::PastDue => {
                "renewal declined, access continues while we retry: please update your card".into()
            }
            Situation::Canceled => format!(
                "cancelled, access active{}",
                d.access_until
                    .as_ref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default()
            ),
            Situation::Ended => "plan ended, no further charges".into(),
            Situation::RenewalNotApplied => format!(
                "renewed (recorded late), access active{}",
                d.access_until
                    .as_ref()
                    .map(|u| format!(" until {u}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// What support sends about this payment (the greeting and signature
    /// are the caller's).
    pub fn reply(self, d: &Details) -> String {
        let paid_on = d
            .paid_on
            .clone()
            .unwrap_or_else(|| "the day you paid".into());
        let r = &d.reference;
        let until = d
            .access_until
            .as_ref()
            .map(|u| format!(" until {u}"))
            .unwrap_or_default();
        match self {
            Situation::AwaitingPayment | Situation::NotYetRecorded => format!(
                "We have not received a payment for your checkout of {} (reference {r}) yet. If you were charged, your money is safe and you will not need to pay again: could you send us the date of the charge, the amount, and the last four digits of the card (never the full number)? With those we can find it at our payment processor within a day.",
                d.started_on
            ),
            Situation::NotCompleted => format!(
                "Your checkout of {} (reference {r}) was not completed, and you were not charged for it. You can start again from our home page whenever you like.",
                d.started_on
            ),
            Situation::PaidConfirming => format!(
                "We have your payment of {} from {paid_on} (reference {r}) and are connecting it to your account; you will get an email as soon as it is active. You do not need to pay again.",
                d.paid
            ),
            Situation::Active => format!(
                "Your payment of {} on {paid_on} went through and your access is active{until}. Your payment reference is {r}; the receipt was emailed to this address (please check your spam folder if you cannot find it — we can send it again).",
                d.paid
            ),
            Situation::ActiveAfterDelay => format!(
                "Your payment of {} on {paid_on} reached us, but a fault on our side kept your account from being activated at the time. It is fixed: your access is active{until}. You were charged once, and there is nothing you need to do. I'm sorry for the worry. Your payment reference is {r}.",
                d.paid
            ),
            Situation::PartiallyRefunded => format!(
                "We refunded {} of your payment of {} from {paid_on} (reference {r}); you keep {} and your access stays active{until}. Refunds take 5 to 10 business days to appear on your statement.",
                d.refunded.clone().unwrap_or_default(),
                d.paid,
                d.net.clone().unwrap_or_default()
            ),
            Situation::Refunded => format!(
                "We have refunded your payment of {} from {paid_on} (reference {r}). Refunds take 5 to 10 business days to appear on your statement, depending on your bank.{}",
                d.paid,
                d.access_until
                    .as_ref()
                    .map(|u| format!(" Your access continues until {u} from your other payment."))
                    .unwrap_or_default()
            ),
            Situation::WithAPerson => format!(
                "We can see your payment of {} from {paid_on} (reference {r}), and your money is safe: you do not need to pay again. I am activating your account now and will write again when it is done, within one business day.",
                d.paid
            ),
            Situation::PaidNotActive => format!(
                "We can see your payment of {} from {paid_on} (reference {r}), and your money is safe. It is not connected to an account yet: which address should have the access?",
                d.paid
            ),
            Situation::DuplicateCharge => format!(
                "You paid twice: the payment of {} from {paid_on} (reference {r}) was a second one. Your access comes from your first payment and stays active{until}; I am refunding this one, and you will get an email when it is done.",
                d.paid
            ),
            Situation::DisputeOpen => format!(
                "Your bank told us that your payment of {} from {paid_on} (reference {r}) is disputed, and took the money back while it decides; the access it paid for is paused until then. If the dispute is a mistake, please tell your bank. We will write to you when it is settled.",
                d.paid
            ),
            Situation::DisputeWon => format!(
                "The dispute about your payment of {} from {paid_on} (reference {r}) was settled and your access is active again{until}.",
                d.paid
            ),
            Situation::DisputeLost => format!(
                "The dispute about your payment of {} from {paid_on} (reference {r}) ended with your bank returning the money to you, so the access it paid for has ended. You can buy access again from our home page whenever you like.",
                d.paid
            ),
            Situation::PastDue => format!(
                "Your renewal payment was declined by your card, so you have not been charged for it. Your access continues while our payment processor tries again over the next days; to keep it without a gap, please update your card with the \"Update your card\" button on your status page (reference {r})."
            ),
            Situation::Canceled => format!(
                "Your plan is cancelled: it will not renew and you will not be charged again. Your access, paid with {} on {paid_on}, continues{until} (reference {r}).",
                d.paid
            ),
            Situation::Ended => format!(
                "Your plan has ended, and you will not be charged again (reference {r}). You can buy access again from our home page whenever you like."
            ),
            Situation::RenewalNotApplied => format!(
                "Your plan renewed, but the renewal reached our records late, which is why your account may have looked unpaid for a moment. I'm sorry about that: it is applied, your access continues{until}, and you were charged once for it (your first payment was {} on {paid_on}; reference {r}).",
                d.paid
            ),
        }
    }
}
