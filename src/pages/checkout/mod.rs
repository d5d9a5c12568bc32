//! `GET /` and `POST /checkout`: the plan form, and the checkout that is
//! recorded *before* the processor is asked for anything.

use super::views::Home;
use super::{internal_error, message, no_store, valid_email, Site};
use crate::processor::client::NewCheckoutSession;
use crate::state::AppState;
use crate::store::{EventStore, ExpectedVersion, StoreError};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use payledger_events::{Actor, DomainEvent, EventData, Metadata, ProcessorSessionOpened, StreamId};
use serde::Deserialize;

pub mod decide;
#[cfg(test)]
mod decide_tests;

#[derive(Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    plan: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    token: String,
}

fn home_page(site: &Site, plan: &str, email: &str, errors: Vec<String>) -> Home {
    Home {
        support_email: site.support_email.clone(),
        reference: None,
        plans: site.plans.all().to_vec(),
        chosen_plan: if plan.is_empty() {
            site.plans
                .all()
                .first()
                .map(|p| p.id.clone())
                .unwrap_or_default()
        } else {
            plan.to_string()
        },
        email: email.to_string(),
        // A fresh token per form: a double submit of this form is one
        // checkout, a new form is a new one.
        token: uuid::Uuid::new_v4().to_string(),
        errors,
    }
}

pub async fn home(State(state): State<AppState>) -> Response {
    home_page(&state.site, "", "", vec![]).into_response()
}

pub async fn start(
    State(state): State<AppState>,
    peer: axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    form: Result<Form<CheckoutForm>, FormRejection>,
) -> Response {
    let site = &state.site;
    let client = crate::state::proxies::client_address(&headers, &peer, &site.trusted_proxies);
    if !site.checkout_limiter.allow_client(&client.to_string()) {
        tracing::info!(%client, "checkout rate limit reached");
        return message(
            site,
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait a little",
            &["We have received many checkouts from your network in the last hour. Nothing was recorded and you were not charged. Please try again later, or write to us."],
            None,
        );
    }
    let Form(form) = match form {
        Ok(f) => f,
        Err(rejection) => {
            let status = rejection.status();
            let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "That form was too large. Nothing was recorded and you were not charged."
            } else {
                "The form could not be read. Nothing was recorded and you were not charged."
            };
            let page = home_page(site, "", "", vec![text.into()]);
            return (status, page).into_response();
        }
    };
    let request = decide::CheckoutRequest {
        plan: form.plan.clone(),
        email: form.email.clone(),
        token: form.token.clone(),
    };
    let address = form.email.trim().to_lowercase();
    let has_access = valid_email(&address)
        && payledger_projections::read::subscriptions::by_email(&state.read, &address)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.grants_access_at(state.clock.now()));
    let decide::Decided { started, plan } = match decide::start(&request, &site.plans, has_access) {
        Ok(decided) => decided,
        Err(errors) => {
            let page = home_page(site, &form.plan, &form.email, errors);
            return (StatusCode::BAD_REQUEST, page).into_response();
        }
    };
    let checkout_id = started.checkout_id;
    let email = started.email.clone();
    let stream = StreamId::checkout(checkout_id);
    let actor = Actor::Customer(email.clone());
    let started: DomainEvent = started.into();
    let metadata = Metadata::new(checkout_id, actor.clone(), "checkout");
    crate::failpoint::hit("checkout.before_record");
    let recorded = async {
        let data =
            EventData::for_processor_fact(&started, &checkout_id.to_string(), metadata.clone())?;
        state
            .store
            .append_to_stream(stream.clone(), ExpectedVersion::Any, vec![data])
            .await
    }
    .await;
    if let Err(e) = recorded {
        return not_started(site, &e);
    }
    crate::failpoint::hit("checkout.after_record");
    if let Ok(history) = state.store.decoded_stream(&stream).await {
        let history: Vec<DomainEvent> = history.into_iter().map(|(_, e)| e).collect();
        if let decide::Next::PayAt(url) = decide::next(&history) {
            return see_other(&url);
        }
    }

    let Some(processor) = site.processor.as_ref() else {
        return internal_error(site, &"no processor is configured (STRIPE_API_KEY)");
    };
    let public = site.public_url.trim_end_matches('/');
    let session = processor
        .create_checkout_session(&NewCheckoutSession {
            checkout_reference: checkout_id.to_string(),
            customer_email: email.clone(),
            product_name: plan.name.clone(),
            amount: plan.amount,
            currency: plan.currency.as_str().to_string(),
            success_url: format!("{public}/checkout/return?session_id={{CHECKOUT_SESSION_ID}}"),
            cancel_url: format!("{public}/"),
            recurring_price_id: plan
                .renews
                .then(|| plan.processor_price_id.clone())
                .flatten(),
        })
        .await;
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let reference = super::error_reference();
            tracing::error!(reference = %reference, error = %e, checkout = %checkout_id, "the processor did not open a session");
            let mut page = super::views::Message {
                support_email: site.support_email.clone(),
                reference: Some(reference),
                heading: "We couldn't reach our payment provider".into(),
                paragraphs: vec![
                    "You have not been charged.".into(),
                    "Please try again in a minute. If it keeps happening, write to us and mention the reference code below.".into(),
                ],
                link_href: Some("/".into()),
                link_text: "Try again".into(),
            }
            .into_response();
            *page.status_mut() = StatusCode::BAD_GATEWAY;
            return no_store(page);
        }
    };
    crate::failpoint::hit("checkout.after_processor");
    let Some(url) = session.url.clone() else {
        return internal_error(
            site,
            &format!("session {} came without a pay page URL", session.id),
        );
    };
    let opened: DomainEvent = ProcessorSessionOpened {
        checkout_id,
        session_id: session.id.clone(),
        url: url.clone(),
    }
    .into();
    // Keyed by the session id: the return page finds its checkout with it.
    let appended = async {
        let data =
            EventData::for_processor_fact(&opened, &session.id, metadata.caused_by(checkout_id))?;
        state
            .store
            .append_to_stream(stream, ExpectedVersion::Any, vec![data])
            .await
    }
    .await;
    if let Err(e) = appended {
        // The session exists at the processor and carries the checkout id:
        // whatever happens there is still matched. Send the customer on.
        tracing::warn!(error = %e, checkout = %checkout_id, "could not record the opened session; the customer goes on to pay");
    }
    see_other(&url)
}

fn not_started(site: &Site, e: &StoreError) -> Response {
    let reference = super::error_reference();
    tracing::error!(reference = %reference, error = %e, "could not record a checkout");
    message(
        site,
        StatusCode::SERVICE_UNAVAILABLE,
        "We couldn't start your checkout",
        &[
            "You have not been charged.",
            "Please try again in a minute. If it keeps happening, write to us and mention the reference code below.",
        ],
        Some(reference),
    )
}

fn see_other(url: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string())]).into_response()
}
