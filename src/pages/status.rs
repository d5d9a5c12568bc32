//! The return page, the status page and the status-by-email form. They read
//! the `customer_status` read model and never provision anything; the only
//! events they append say that the customer came back or asked.

use super::views::{Status, StatusForm};
use super::{internal_error, message, no_store, unavailable, valid_email, Site};
use crate::situation::{self, Details, Situation};
use crate::state::AppState;
use crate::store::{EventStore, ExpectedVersion, StoreError};
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use payledger_events::{
    deterministic_event_id, Actor, CheckoutReturned, DomainEvent, EventData, Metadata,
    StatusLinkRequested, StreamId,
};
use payledger_projections::customer_status::reference_code;
use payledger_projections::read::customer_status::{self, CustomerStatusRow};
use serde::Deserialize;
use std::net::SocketAddr;
use uuid::Uuid;

const REFRESH_SECONDS: u32 = 5;

#[derive(Deserialize)]
pub struct ReturnQuery {
    #[serde(default)]
    session_id: String,
}

/// A database that cannot be reached gets the static promise; anything
/// else is our bug and gets the error page.
fn store_failure(site: &Site, e: &StoreError) -> Response {
    if is_outage(e) {
        unavailable(site, e)
    } else {
        internal_error(site, e)
    }
}

fn is_outage(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(_) => true,
        StoreError::Database(db) => db.is_closed() || db.as_db_error().is_none(),
        _ => false,
    }
}

/// `POST /status` while the database is out of reach: not the status
/// page's words — this request was not taken, and no email will come.
fn request_not_taken(site: &Site, e: &StoreError) -> Response {
    if !is_outage(e) {
        return internal_error(site, e);
    }
    let reference = super::error_reference();
    tracing::error!(reference = %reference, error = %e, "status request not taken: the database is unreachable");
    let mut r = message(
        site,
        StatusCode::SERVICE_UNAVAILABLE,
        "We couldn't take your request right now",
        &[
            "Our records are briefly out of reach, so we could not send the email you asked for. Please try again in a few minutes.",
            "If you paid, your payment is safe: our payment processor has it, and nothing is lost while this page is down. Please don't pay again.",
        ],
        Some(reference),
    );
    r.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("30"),
    );
    r
}

fn unknown(site: &Site, what: &str) -> Response {
    message(
        site,
        StatusCode::NOT_FOUND,
        &format!("We couldn't find {what}"),
        &[
            "The link may be incomplete or out of date.",
            "If you paid, your payment is safe. Enter the email address you paid with on our status page and we will email you a link to each of your payments.",
        ],
        None,
    )
}

pub async fn checkout_return(
    State(state): State<AppState>,
    Query(q): Query<ReturnQuery>,
) -> Response {
    let site = &state.site;
    let session_id = q.session_id.trim();
    if session_id.is_empty() || session_id.len() > 255 {
        return unknown(site, "this checkout");
    }
    match returned(&state, session_id).await {
        Ok(None) => unknown(site, "this checkout"),
        Ok(Some((checkout_id, returned_at, row))) => {
            let reference = reference_code("checkout", &checkout_id.to_string());
            render(&state, &reference, row.as_ref(), returned_at).await
        }
        Err(e) => store_failure(site, &e),
    }
}

/// The checkout behind a session, with `CheckoutReturned` recorded once
/// (its id is the checkout's, so a refreshing page appends nothing more).
async fn returned(
    state: &AppState,
    session_id: &str,
) -> Result<Option<(Uuid, DateTime<Utc>, Option<CustomerStatusRow>)>, StoreError> {
    let opened_id = deterministic_event_id("ProcessorSessionOpened", session_id);
    let Some(DomainEvent::ProcessorSessionOpened(opened)) = state.store.event(opened_id).await?
    else {
        return Ok(None);
    };
    let checkout_id = opened.checkout_id;
    let event: DomainEvent = CheckoutReturned {
        checkout_id,
        session_id: session_id.to_string(),
    }
    .into();
    let data = EventData::for_processor_fact(
        &event,
        &checkout_id.to_string(),
        Metadata::new(
            checkout_id,
            Actor::Customer("return-page".into()),
            "return-page",
        ),
    )?;
    let returned_id = data.event_id;
    crate::failpoint::hit("return.before_record");
    state
        .store
        .append_to_stream(
            StreamId::checkout(checkout_id),
            ExpectedVersion::Any,
            vec![data],
        )
        .await?;
    // The first return's time, also when this is the page being refreshed.
    let returned_at = match state.store.read_event(returned_id).await? {
        Some(e) => e.recorded_at,
        None => state.clock.now(),
    };
    let row = customer_status::by_checkout(&state.read, &checkout_id.to_string()).await?;
    Ok(Some((checkout_id, returned_at, row)))
}

pub async fn status_page(State(state): State<AppState>, Path(reference): Path<String>) -> Response {
    let site = &state.site;
    let reference = reference.trim().to_uppercase();
    let well_formed = reference.len() == 22
        && reference.starts_with("PL-")
        && reference[3..]
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit());
    if !well_formed {
        return unknown(site, "this reference");
    }
    let found = customer_status::by_reference(&state.read, &reference).await;
    match found {
        Ok(Some(row)) => render(&state, &reference, Some(&row), row.waiting_since()).await,
        Ok(None) => unknown(site, "this reference"),
        Err(e) => store_failure(site, &e),
    }
}

/// What the customer is told: the payment's situation (or, before the
/// read model has a row, how long they have waited since `since`).
async fn render(
    state: &AppState,
    reference: &str,
    row: Option<&CustomerStatusRow>,
    since: DateTime<Utc>,
) -> Response {
    let site = &state.site;
    let now = state.clock.now();
    let ctx = situation::load::Context {
        plans: &site.plans,
        support_email: &site.support_email,
        now,
        pending_window: site.pending_window,
        zone: site.zone,
    };
    let (situation, details) = match row {
        Some(row) => match situation::load::situation_of(&state.read, row, &ctx).await {
            Ok(found) => found,
            Err(e) => return store_failure(site, &e),
        },
        None => {
            let waited = now - since > site.pending_window;
            let situation = if waited {
                Situation::NotYetRecorded
            } else {
                Situation::AwaitingPayment
            };
            let details = Details {
                reference: reference.to_string(),
                paid: "your payment".into(),
                masked_email: "the address you gave".into(),
                support_email: site.support_email.clone(),
                ..Details::default()
            };
            (situation, details)
        }
    };
    let page = Status {
        support_email: site.support_email.clone(),
        reference: Some(reference.to_string()),
        situation: situation.name(),
        page: situation.page(&details, REFRESH_SECONDS),
        code: reference.to_string(),
        refresh_seconds: REFRESH_SECONDS,
    };
    no_store(page.into_response())
}

pub async fn status_form(State(state): State<AppState>) -> Response {
    StatusForm {
        support_email: state.site.support_email.clone(),
        reference: None,
        email: String::new(),
        error: None,
    }
    .into_response()
}

#[derive(Deserialize)]
pub struct StatusRequest {
    #[serde(default)]
    email: String,
}

pub async fn request_links(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    form: Result<Form<StatusRequest>, FormRejection>,
) -> Response {
    let site = &state.site;
    let email = form
        .map(|Form(f)| f.email.trim().to_lowercase())
        .unwrap_or_default();
    if !valid_email(&email) {
        let page = StatusForm {
            support_email: site.support_email.clone(),
            reference: None,
            email,
            error: Some(
                "Please enter the email address you paid with (for example name@example.com)."
                    .into(),
            ),
        };
        return (StatusCode::BAD_REQUEST, page).into_response();
    }
    let client = crate::state::proxies::client_address(&headers, &peer, &site.trusted_proxies);
    if !site.limiter.allow(&email, &client.to_string()) {
        return message(
            site,
            StatusCode::TOO_MANY_REQUESTS,
            "Please wait a little",
            &["We have already received several requests like this one. Please check your inbox (and spam folder), or try again in an hour."],
            None,
        );
    }
    let request_id = Uuid::new_v4();
    let event: DomainEvent = StatusLinkRequested {
        request_id,
        email: email.clone(),
    }
    .into();
    crate::failpoint::hit("status.before_record");
    let appended = async {
        let data = EventData::new(
            &event,
            request_id,
            Metadata::new(request_id, Actor::Customer(email.clone()), "status-form"),
        )?;
        state
            .store
            .append_to_stream(
                StreamId::status_request(request_id),
                ExpectedVersion::NoStream,
                vec![data],
            )
            .await
    }
    .await;
    if let Err(e) = appended {
        return request_not_taken(site, &e);
    }
    // The same words whether or not the address is known.
    message(
        site,
        StatusCode::OK,
        "Check your inbox",
        &[
            "If we have payments for this address, we have sent it an email with a link to the status of each one. It should arrive within a few minutes.",
            "Nothing there? Check your spam folder, or write to us.",
        ],
        None,
    )
}
