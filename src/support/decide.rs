//! The support desk's decisions, without I/O: given what the log says
//! about a payment, what a command would append — or why it will not. The
//! actions load the facts, call these, ask the person, and append with the
//! stream version the decision was made on.

use crate::plans::Plans;
use payledger_events::{
    Actor, ChargeMatched, ChargeRefunded, ChargeSucceeded, DiscrepancyResolved, DomainEvent, Email,
    EmailResendRequested, Money, SubscriptionGranted,
};
use payledger_projections::states::{DiscrepancyStatus, EmailStatus, PaymentState};

/// What one payment's stream says, folded in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentFacts {
    pub payment_id: String,
    /// The stream's last version (0: nothing recorded).
    pub version: i64,
    pub charge: Option<ChargeSucceeded>,
    pub matched: Option<ChargeMatched>,
    pub refunds: Vec<ChargeRefunded>,
    /// Disputes opened and not closed yet.
    pub open_disputes: Vec<String>,
}

impl PaymentFacts {
    pub fn fold(payment_id: &str, events: impl IntoIterator<Item = (i64, DomainEvent)>) -> Self {
        let mut facts = PaymentFacts {
            payment_id: payment_id.into(),
            ..Default::default()
        };
        for (version, event) in events {
            facts.version = facts.version.max(version);
            match event {
                DomainEvent::ChargeSucceeded(c) => facts.charge = Some(c),
                DomainEvent::ChargeMatched(m) => facts.matched = Some(m),
                DomainEvent::ChargeRefunded(r) => facts.refunds.push(r),
                DomainEvent::DisputeOpened(d) => facts.open_disputes.push(d.dispute_id),
                DomainEvent::DisputeClosed(d) => facts.open_disputes.retain(|o| *o != d.dispute_id),
                _ => {}
            }
        }
        facts
    }

    pub fn refunded_minor(&self) -> i64 {
        self.refunds
            .iter()
            .fold(0i64, |sum, r| sum.saturating_add(r.amount))
    }
}

/// Why a command appends nothing. `Done` is not a failure: the command was
/// already carried out, and running it again changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Done(String),
    NotFound(String),
    Refused(String),
    Invalid(String),
}

pub struct RescueRequest<'a> {
    pub payment_id: &'a str,
    pub email: Option<&'a str>,
    pub plan: Option<&'a str>,
    pub force: Option<&'a str>,
}

/// What a rescue will do, in words for the person, and the fact it records.
#[derive(Debug, Clone, PartialEq)]
pub struct Rescue {
    pub what: String,
    pub matched: ChargeMatched,
}

/// `activated`: the customer-status read model already shows this payment
/// activating a subscription (matched through its checkout).
pub fn rescue(
    facts: &PaymentFacts,
    activated: bool,
    plans: &Plans,
    req: &RescueRequest<'_>,
    by: &Actor,
) -> Result<Rescue, Refusal> {
    let p = req.payment_id;
    let Some(charge) = &facts.charge else {
        return Err(Refusal::NotFound(format!("payment {p} is unknown: no ChargeSucceeded for it (run payledger reconcile if the processor shows it)")));
    };
    if let Some(m) = &facts.matched {
        return Err(Refusal::Done(format!(
            "payment {p} is already matched to {} on plan {} (by {}): nothing to do",
            m.email, m.plan, m.matched_by
        )));
    }
    if activated {
        return Err(Refusal::Done(format!(
            "payment {p} already activated its subscription: nothing to do"
        )));
    }
    if !facts.refunds.is_empty() {
        return Err(Refusal::Refused(format!("payment {p} was refunded: rescuing it would give access without a charge (use support grant if that is what you want)")));
    }
    let email = match req.email.map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => Email::parse(e)
            .map_err(|_| Refusal::Invalid(format!("--email {e:?} is not an email address")))?
            .to_string(),
        None => charge
            .customer_email
            .as_deref()
            .map(str::to_lowercase)
            .ok_or_else(|| {
                Refusal::Invalid(format!("payment {p} carries no email: give --email"))
            })?,
    };
    let paid = Money::new(charge.amount, charge.currency.clone());
    let (amount, currency) = (charge.amount, charge.currency.as_str());
    let plan = match req.plan {
        Some(id) => plans.get(id).cloned().ok_or_else(|| {
            Refusal::Invalid(format!(
                "--plan {id:?} is not a plan (known: {})",
                plans
                    .all()
                    .iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
        None => match plans.priced(amount, currency).as_slice() {
            [one] => (*one).clone(),
            _ => {
                return Err(Refusal::Invalid(format!(
                    "payment {p} ({paid}) fits no single plan: give --plan"
                )))
            }
        },
    };
    let fits = plan.amount == amount && plan.currency.as_str() == currency;
    if !fits && req.force.is_none() {
        return Err(Refusal::Refused(format!(
            "payment {p} is {paid} but plan {} costs {}: refund it, or use --force \"REASON\"",
            plan.id,
            plan.price()
        )));
    }
    let reason = match req.force {
        Some(r) => format!("support rescue (forced: {r})"),
        None => "support rescue".into(),
    };
    Ok(Rescue {
        what: format!(
            "match payment {p} ({paid}) to {email} on plan {}, activate the subscription, and send the rescue email",
            plan.id
        ),
        matched: ChargeMatched {
            payment_id: p.into(),
            email,
            plan: plan.id.clone(),
            reason,
            matched_by: by.clone(),
        },
    })
}

/// A refund decided: the words for the person, the amount to ask the
/// processor for (`None`: all that is left), and the idempotency key — one
/// per state of the payment, so two people refunding the same state make
/// one refund, and a later partial refund is a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refunding {
    pub what: String,
    pub amount: Option<i64>,
    pub key: String,
}

/// A refund of `amount` (minor units; `None`: whatever is left), never more
/// than what is left, and never of a charge the bank is disputing (the bank
/// already took that money back).
pub fn refund(
    facts: &PaymentFacts,
    reason: &str,
    amount: Option<i64>,
) -> Result<Refunding, Refusal> {
    let p = &facts.payment_id;
    if reason.trim().is_empty() {
        return Err(Refusal::Invalid(
            "--reason must say why (it is kept with the refund)".into(),
        ));
    }
    let Some(charge) = &facts.charge else {
        return Err(Refusal::NotFound(format!(
            "payment {p} is unknown: no ChargeSucceeded for it"
        )));
    };
    let money = |minor: i64| Money::new(minor, charge.currency.clone()).to_string();
    let refunded = facts.refunded_minor();
    let left = charge.amount.saturating_sub(refunded);
    if left <= 0 {
        return Err(Refusal::Done(format!(
            "payment {p} is already refunded in full ({}): nothing to do",
            money(refunded)
        )));
    }
    if let Some(dispute) = facts.open_disputes.first() {
        return Err(Refusal::Refused(format!(
            "payment {p} is disputed ({dispute}): the bank already took the money back, so a refund would pay the customer twice; wait until the dispute closes"
        )));
    }
    if let Some(a) = amount {
        if a <= 0 {
            return Err(Refusal::Invalid("--amount must be more than zero".into()));
        }
        if a > left {
            return Err(Refusal::Refused(format!(
                "--amount {} is more than what is left to refund of payment {p}: {} of {}",
                money(a),
                money(left),
                money(charge.amount)
            )));
        }
    }
    let this = amount.unwrap_or(left);
    let before = if refunded > 0 {
        format!(" ({} already refunded)", money(refunded))
    } else {
        String::new()
    };
    let what = if this == charge.amount {
        format!(
            "refund payment {p} in full ({}) at the processor, record it, and send the refund email",
            money(this)
        )
    } else {
        format!(
            "refund {} of payment {p} ({}){before} at the processor, leaving {}, record it, and send the refund email",
            money(this),
            money(charge.amount),
            money(left - this)
        )
    };
    // The first full refund keeps the key it always had.
    let key = if refunded == 0 && amount.is_none() {
        format!("payledger-refund-{p}")
    } else {
        format!("payledger-refund-{p}-after-{refunded}-{this}")
    };
    Ok(Refunding {
        what,
        amount: amount.map(|_| this),
        key,
    })
}

/// Access without a charge, given the address's current subscription (its
/// plan, how it was activated, until when, and whether it gives access now)
/// and the account's stream. A grant never silently replaces paid access:
/// that would move its end and call it a grant.
pub fn grant(
    plans: &Plans,
    email: &str,
    plan: &str,
    reason: &str,
    by: &Actor,
    current: Option<&CurrentAccess>,
    written: &[Written],
) -> Result<SubscriptionGranted, Refusal> {
    let parsed = Email::parse(email)
        .map_err(|_| Refusal::Invalid(format!("--email {email:?} is not an email address")))?;
    if plans.get(plan).is_none() {
        return Err(Refusal::Invalid(format!("--plan {plan:?} is not a plan")));
    }
    if reason.trim().is_empty() {
        return Err(Refusal::Invalid(
            "--reason must say why access is given without a charge".into(),
        ));
    }
    let earlier = written.iter().rev().find_map(|w| match &w.event {
        DomainEvent::SubscriptionGranted(g) if g.plan == plan => {
            Some((g.granted_by.to_string(), w.at))
        }
        _ => None,
    });
    if let Some((who, at)) = earlier {
        return Err(Refusal::Done(format!(
            "{parsed} was already granted {plan} by {who} at {}: nothing to do",
            when(at)
        )));
    }
    if let Some(c) = current.filter(|c| c.active && c.activation != "grant") {
        return Err(Refusal::Refused(format!(
            "{parsed} already has paid access ({} through {}, until {}); a grant would replace it and move its end, so nothing was done — see payledger support find {parsed}",
            c.plan,
            c.activation,
            c.until.format("%Y-%m-%d")
        )));
    }
    Ok(SubscriptionGranted {
        email: parsed.to_string(),
        plan: plan.into(),
        reason: reason.trim().into(),
        granted_by: by.clone(),
    })
}

/// What an address has now, as a grant decision needs it.
#[derive(Debug, Clone)]
pub struct CurrentAccess {
    pub plan: String,
    /// checkout | rescue | grant
    pub activation: String,
    pub until: chrono::DateTime<chrono::Utc>,
    pub active: bool,
}

/// An event already in a small stream, with who wrote it and when.
#[derive(Debug, Clone)]
pub struct Written {
    pub event: DomainEvent,
    pub by: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

fn when(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Resolving a discrepancy, given its status in the read model and its
/// stream (what people already did to it). A person's resolution is final:
/// a second one says who did it and when, and changes nothing.
pub fn resolve(
    status: Option<DiscrepancyStatus>,
    written: &[Written],
    id: &str,
    note: &str,
    by: &Actor,
) -> Result<DiscrepancyResolved, Refusal> {
    if note.trim().is_empty() {
        return Err(Refusal::Invalid("--note must say what was done".into()));
    }
    let earlier = written.iter().rev().find_map(|w| match &w.event {
        DomainEvent::DiscrepancyResolved(r) => Some((r.resolved_by.to_string(), w.at)),
        _ => None,
    });
    if let Some((who, at)) = earlier {
        return Err(Refusal::Done(format!(
            "discrepancy {id} was already resolved by {who} at {}: nothing to do",
            when(at)
        )));
    }
    match status {
        None => Err(Refusal::NotFound(format!(
            "no discrepancy {id:?} (see payledger support queue)"
        ))),
        Some(DiscrepancyStatus::Resolved) => Err(Refusal::Done(format!(
            "discrepancy {id} is already resolved (it cleared by itself): nothing to do"
        ))),
        Some(DiscrepancyStatus::Open | DiscrepancyStatus::Acknowledged) => {
            Ok(DiscrepancyResolved {
                discrepancy_id: id.into(),
                resolution: "resolved by support".into(),
                note: note.into(),
                resolved_by: by.clone(),
            })
        }
    }
}

/// Sending an email again, given the email the key names (`None`: none)
/// and its stream. A request not yet answered by a send or a failure is
/// still on its way: a second one says who asked and when.
///
/// `receipt_now`: for a receipt (which says access is active), where its
/// payment stands now. A receipt whose payment was refunded or disputed
/// since is not sent again: it would tell the customer something false.
pub fn resend(
    email: Option<(&str, EmailStatus, i32)>,
    receipt_now: Option<PaymentState>,
    written: &[Written],
    key: &str,
    by: &Actor,
) -> Result<EmailResendRequested, Refusal> {
    let Some((email_key, status, _)) = email else {
        return Err(Refusal::NotFound(format!("no email is known for {key:?} (give an email key like confirmation:pi_… or a payment id)")));
    };
    if let Some(now) = receipt_now.filter(|s| *s != PaymentState::Active) {
        let payment = email_key.split_once(':').map_or(email_key, |(_, p)| p);
        return Err(Refusal::Refused(format!(
            "{email_key} is a receipt saying access is active, but payment {payment} is {now} now, so it was not sent again; payledger support reply {payment} has the words for where it stands"
        )));
    }
    let waiting = written.iter().rev().find_map(|w| match &w.event {
        DomainEvent::EmailResendRequested(r) => Some(Some((r.requested_by.to_string(), w.at))),
        DomainEvent::EmailSent(_) | DomainEvent::EmailFailed(_) => Some(None),
        _ => None,
    });
    if let Some(Some((who, at))) = waiting {
        return Err(Refusal::Done(format!(
            "{who} already asked to send {email_key} again at {}; it is on its way: nothing to do",
            when(at)
        )));
    }
    if status == EmailStatus::Pending {
        return Err(Refusal::Done(format!(
            "{email_key} is already waiting to be sent: nothing to do"
        )));
    }
    Ok(EmailResendRequested {
        email_key: email_key.into(),
        requested_by: by.clone(),
    })
}

/// Auto-rescue of an unmatched charge: only when the charge names its
/// customer, its amount fits exactly one plan, and nothing suggests it is a
/// second payment (`has_access`: the address already has access).
pub fn auto_rescue(
    facts: &PaymentFacts,
    plans: &Plans,
    has_access: bool,
) -> Result<ChargeMatched, Refusal> {
    let p = &facts.payment_id;
    let Some(charge) = &facts.charge else {
        return Err(Refusal::NotFound(format!(
            "payment {p} has no recorded charge"
        )));
    };
    if facts.matched.is_some() {
        return Err(Refusal::Done(format!("payment {p} is already matched")));
    }
    if !facts.refunds.is_empty() {
        return Err(Refusal::Refused("the charge was refunded".into()));
    }
    let Some(email) = charge.customer_email.as_deref().map(str::to_lowercase) else {
        return Err(Refusal::Refused("the charge carries no email".into()));
    };
    let plan = match plans
        .priced(charge.amount, charge.currency.as_str())
        .as_slice()
    {
        [one] => (*one).clone(),
        [] => return Err(Refusal::Refused("the amount fits no plan".into())),
        many => {
            return Err(Refusal::Refused(format!(
                "the amount fits {} plans",
                many.len()
            )))
        }
    };
    if has_access {
        return Err(Refusal::Refused(format!(
            "{email} already has an active subscription: possibly a duplicate charge"
        )));
    }
    Ok(ChargeMatched {
        payment_id: p.clone(),
        reason: format!(
            "auto-rescue: {} matches exactly one plan ({}) and the charge names {email}",
            plan.price(),
            plan.id
        ),
        email,
        plan: plan.id.clone(),
        matched_by: Actor::auto_rescue(),
    })
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
