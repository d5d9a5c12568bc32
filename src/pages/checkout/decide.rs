//! What a checkout form decides, without I/O: the checkout it starts (the
//! same form sent twice is the same checkout), or what to tell the person;
//! and, given the checkout's history, where they go next.

use crate::plans::{Plan, Plans};
use payledger_events::email::valid_email;
use payledger_events::{deterministic_event_id, CheckoutStarted, DomainEvent};
use uuid::Uuid;

/// What the form holds, as sent.
#[derive(Debug, Clone, Default)]
pub struct CheckoutRequest {
    pub plan: String,
    pub email: String,
    pub token: String,
}

/// The checkout to record, and the plan it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub started: CheckoutStarted,
    pub plan: Plan,
}

/// A valid form starts a checkout whose id follows from the form's token,
/// plan and address; an invalid one gets every reason at once, in words
/// for the person at the form. `has_access`: the address already has
/// access — a second payment would only be a duplicate to refund.
pub fn start(
    request: &CheckoutRequest,
    plans: &Plans,
    has_access: bool,
) -> Result<Decided, Vec<String>> {
    let email = request.email.trim().to_lowercase();
    let mut errors = vec![];
    if email.is_empty() {
        errors.push("Please enter your email address.".to_string());
    } else if !valid_email(&email) {
        errors.push("That email address doesn't look right: please check it (for example name@example.com).".into());
    }
    let plan = plans.get(&request.plan).cloned();
    if plan.is_none() {
        errors.push("Please choose one of the plans below.".into());
    }
    if has_access && errors.is_empty() {
        errors.push("This address already has access, so you don't need to pay again. To buy for someone else, enter their address.".into());
    }
    let token = Uuid::parse_str(request.token.trim()).ok();
    if token.is_none() && errors.is_empty() {
        errors.push("This form has expired: please submit it again.".into());
    }
    let (Some(plan), Some(token), true) = (plan, token, errors.is_empty()) else {
        return Err(errors);
    };
    let checkout_id = deterministic_event_id("checkout", &format!("{token}|{}|{email}", plan.id));
    Ok(Decided {
        started: CheckoutStarted {
            checkout_id,
            email,
            plan: plan.id.clone(),
            amount: plan.amount,
            currency: plan.currency.clone(),
            period: plan.period,
            renews: plan.renews,
        },
        plan,
    })
}

/// Where a started checkout goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// A pay page is already open for it: back there, not a second session.
    PayAt(String),
    /// Ask the processor for a pay page.
    OpenSession,
}

pub fn next(history: &[DomainEvent]) -> Next {
    history
        .iter()
        .find_map(|e| match e {
            DomainEvent::ProcessorSessionOpened(o) => Some(Next::PayAt(o.url.clone())),
            _ => None,
        })
        .unwrap_or(Next::OpenSession)
}
