//! The simulator's billing endpoints (spec §12): subscriptions, invoices,
//! customers and billing-portal sessions in the processor's wire format,
//! the customer's portal page, and the `/_sim/…` switches that drive them
//! (the clock, card outcomes, a cancellation as the customer makes it).

use crate::api::{html_escape, invalid, list_shown, missing, param, ApiError, Params};
use crate::delivery::dispatch;
use crate::Simulator;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn api_routes() -> Router<Simulator> {
    Router::new()
        .route("/v1/subscriptions", get(list_subscriptions))
        .route(
            "/v1/subscriptions/{id}",
            get(retrieve_subscription)
                .post(update_subscription)
                .delete(delete_subscription),
        )
        .route("/v1/customers", get(list_customers))
        .route("/v1/invoices", get(list_invoices))
        .route("/v1/invoices/{id}", get(retrieve_invoice))
        .route("/v1/billing_portal/sessions", post(create_portal_session))
}

pub fn sim_routes() -> Router<Simulator> {
    Router::new()
        .route("/portal/{customer}", get(portal_page))
        .route("/portal/{customer}/card", post(portal_update_card))
        .route("/portal/{customer}/cancel", post(portal_cancel))
        .route("/_sim/clock", get(get_clock))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/cards", post(set_card))
        .route("/_sim/subscriptions/{id}/cancel", post(sim_cancel))
}

fn customer_of(s: &payledger_stripe::billing::Subscription) -> &str {
    s.customer_id().unwrap_or_default()
}

async fn list_subscriptions(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    // Without `status`, the processor lists every status but `canceled`.
    let status = param(&params, "status").map(str::to_string);
    if let Some(s) = &status {
        if !matches!(
            s.as_str(),
            "all" | "active" | "past_due" | "canceled" | "unpaid" | "trialing"
        ) {
            return Err(invalid(format!(
                "status {s:?} is not a subscription status or all"
            )));
        }
    }
    let customer = param(&params, "customer").map(str::to_string);
    let shown: Vec<(String, i64, String, String, Value)> = state
        .billing
        .subscriptions
        .iter()
        .map(|s| {
            (
                s.object.id.clone(),
                s.object.created,
                s.object.status.clone(),
                customer_of(&s.object).to_string(),
                state.subscription_json(&s.object),
            )
        })
        .collect();
    list_shown(
        &shown,
        |s| &s.0,
        |s| s.1,
        |s| {
            let status_ok = match status.as_deref() {
                Some("all") => true,
                Some(wanted) => s.2 == wanted,
                None => s.2 != "canceled",
            };
            status_ok && customer.as_deref().is_none_or(|c| s.3 == c)
        },
        |s| &s.4,
        &params,
        "/v1/subscriptions",
    )
}

async fn retrieve_subscription(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let s = state
        .subscription_index(&id)
        .ok()
        .and_then(|i| state.billing.subscriptions.get(i))
        .ok_or_else(|| missing("subscription", &id))?;
    Ok(Json(state.subscription_json(&s.object)))
}

/// `cancel_at_period_end=true|false`: schedule or withdraw a cancellation.
async fn update_subscription(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Result<Json<Value>, ApiError> {
    if let Some(price) = param(&params, "items[0][price]") {
        let price = price.to_string();
        return once(&sim, &headers, "price", || change_price(&sim, &id, &price));
    }
    let at_period_end = match param(&params, "cancel_at_period_end") {
        Some("true") => true,
        Some("false") => false,
        other => {
            return Err(invalid(format!(
                "cancel_at_period_end must be true or false (got {other:?}), or items[0][price] a recurring price; nothing else can be updated here"
            )))
        }
    };
    once(&sim, &headers, "update", || {
        cancel(&sim, &id, at_period_end, false)
    })
}

async fn delete_subscription(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    once(&sim, &headers, "delete", || cancel(&sim, &id, false, true))
}

/// As the processor does with an `Idempotency-Key`: the first answer given
/// for a key is the answer to every retry with it.
fn once(
    sim: &Simulator,
    headers: &HeaderMap,
    what: &str,
    act: impl FnOnce() -> Result<Json<Value>, ApiError>,
) -> Result<Json<Value>, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("subscriptions-{what}:{k}"));
    if let Some(previous) = key
        .as_ref()
        .and_then(|k| sim.lock().idempotent_responses.get(k).cloned())
    {
        return Ok(Json(previous));
    }
    let answer = act()?;
    if let Some(k) = key {
        sim.lock().idempotent_responses.insert(k, answer.0.clone());
    }
    Ok(answer)
}

fn cancel(
    sim: &Simulator,
    id: &str,
    at_period_end: bool,
    immediately: bool,
) -> Result<Json<Value>, ApiError> {
    let (events, shown) = {
        let mut state = sim.lock();
        state
            .subscription_index(id)
            .map_err(|_| missing("subscription", id))?;
        let now = state.now();
        let events = state
            .cancel_subscription(id, at_period_end, immediately, now)
            .map_err(invalid)?;
        let index = state.subscription_index(id).map_err(invalid)?;
        let shown = state.subscription_json(&state.billing.subscriptions[index].object);
        (events, shown)
    };
    dispatch(sim, events);
    Ok(Json(shown))
}

/// A plan change: the new price from the next renewal on.
fn change_price(sim: &Simulator, id: &str, price: &str) -> Result<Json<Value>, ApiError> {
    let (events, shown) = {
        let mut state = sim.lock();
        let index = state
            .subscription_index(id)
            .map_err(|_| missing("subscription", id))?;
        let price = state.price(price).ok_or_else(|| missing("price", price))?;
        let now = state.now();
        let events = state.change_price(index, price, now).map_err(invalid)?;
        let shown = state.subscription_json(&state.billing.subscriptions[index].object);
        (events, shown)
    };
    dispatch(sim, events);
    Ok(Json(shown))
}

async fn list_customers(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let email = param(&params, "email").map(str::to_lowercase);
    list_shown(
        &state.billing.customers,
        |c| c.get("id").and_then(|i| i.as_str()).unwrap_or_default(),
        |c| {
            c.get("created")
                .and_then(|t| t.as_i64())
                .unwrap_or_default()
        },
        |c| {
            email.as_deref().is_none_or(|e| {
                c.get("email")
                    .and_then(|x| x.as_str())
                    .map(str::to_lowercase)
                    .as_deref()
                    == Some(e)
            })
        },
        |c| c,
        &params,
        "/v1/customers",
    )
}

async fn list_invoices(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let subscription = param(&params, "subscription").map(str::to_string);
    let customer = param(&params, "customer").map(str::to_string);
    let status = param(&params, "status").map(str::to_string);
    let shown: Vec<(String, i64, Value)> = state
        .billing
        .invoices
        .iter()
        .filter(|i| {
            subscription
                .as_deref()
                .is_none_or(|s| i.subscription_id() == Some(s))
                && customer
                    .as_deref()
                    .is_none_or(|c| i.customer_id() == Some(c))
                && status
                    .as_deref()
                    .is_none_or(|s| i.status.as_deref() == Some(s))
        })
        .map(|i| (i.id.clone(), i.created, state.invoice_json(i)))
        .collect();
    list_shown(
        &shown,
        |i| &i.0,
        |i| i.1,
        |_| true,
        |i| &i.2,
        &params,
        "/v1/invoices",
    )
}

async fn retrieve_invoice(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let invoice = state.invoice(&id).ok_or_else(|| missing("invoice", &id))?;
    Ok(Json(state.invoice_json(invoice)))
}

async fn create_portal_session(
    State(sim): State<Simulator>,
    Form(params): Form<Params>,
) -> Result<Json<Value>, ApiError> {
    let customer = param(&params, "customer").ok_or_else(|| invalid("customer is required"))?;
    let return_url = param(&params, "return_url").unwrap_or_default().to_string();
    let mut state = sim.lock();
    if !state
        .billing
        .customers
        .iter()
        .any(|c| c.get("id").and_then(|i| i.as_str()) == Some(customer))
    {
        return Err(missing("customer", customer));
    }
    let id = state.new_id("bps");
    let base = sim.config.public_url.trim_end_matches('/');
    let url = format!(
        "{base}/portal/{customer}?return_url={}",
        url_encode(&return_url)
    );
    Ok(Json(json!({
        "id": id, "object": "billing_portal.session", "customer": customer,
        "return_url": return_url, "url": url, "created": state.now(),
    })))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct PortalQuery {
    #[serde(default)]
    return_url: String,
}

fn customer_email(sim: &Simulator, customer: &str) -> Option<String> {
    sim.lock()
        .billing
        .customers
        .iter()
        .find(|c| c.get("id").and_then(|i| i.as_str()) == Some(customer))
        .and_then(|c| c.get("email").and_then(|e| e.as_str()).map(str::to_string))
}

async fn portal_page(
    State(sim): State<Simulator>,
    Path(customer): Path<String>,
    Query(q): Query<PortalQuery>,
) -> Response {
    let Some(email) = customer_email(&sim, &customer) else {
        return Html("<!doctype html><p>No such customer.</p>".to_string()).into_response();
    };
    let back = html_escape(&q.return_url);
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Billing</title></head><body>\
         <h1>Simulated billing portal</h1><p>Customer: {}</p>\
         <form method=\"post\" action=\"/portal/{customer}/card\"><input type=\"hidden\" name=\"return_url\" value=\"{back}\">\
         <button id=\"update-card\">Update card</button></form>\
         <form method=\"post\" action=\"/portal/{customer}/cancel\"><input type=\"hidden\" name=\"return_url\" value=\"{back}\">\
         <button id=\"cancel\">Cancel subscription</button></form></body></html>",
        html_escape(&email)
    ))
    .into_response()
}

/// A working card: later charges succeed, and a renewal being retried is
/// tried again at once.
async fn portal_update_card(
    State(sim): State<Simulator>,
    Path(customer): Path<String>,
    Form(q): Form<PortalQuery>,
) -> Response {
    let Some(email) = customer_email(&sim, &customer) else {
        return Html("<!doctype html><p>No such customer.</p>".to_string()).into_response();
    };
    let events = {
        let mut state = sim.lock();
        state.set_card(&email, false);
        let now = state.now();
        state.retry_now(&email, now).unwrap_or_default()
    };
    dispatch(&sim, events);
    back_to(&q.return_url)
}

/// Cancels at the period's end, as the processor's portal does.
async fn portal_cancel(
    State(sim): State<Simulator>,
    Path(customer): Path<String>,
    Form(q): Form<PortalQuery>,
) -> Response {
    let ids: Vec<String> = sim
        .lock()
        .billing
        .subscriptions
        .iter()
        .filter(|s| customer_of(&s.object) == customer && s.object.status != "canceled")
        .map(|s| s.object.id.clone())
        .collect();
    for id in ids {
        let _ = cancel(&sim, &id, true, false);
    }
    back_to(&q.return_url)
}

fn back_to(url: &str) -> Response {
    if url.is_empty() {
        Html("<!doctype html><p>Done.</p>".to_string()).into_response()
    } else {
        Redirect::to(url).into_response()
    }
}

async fn get_clock(State(sim): State<Simulator>) -> Json<Value> {
    Json(json!({ "now": sim.lock().now() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    #[serde(default)]
    days: Option<i64>,
    #[serde(default)]
    seconds: Option<i64>,
}

async fn advance_clock(
    State(sim): State<Simulator>,
    Json(by): Json<Advance>,
) -> Result<Json<Value>, ApiError> {
    let seconds = match (by.days, by.seconds) {
        (Some(d), None) => d.checked_mul(86_400),
        (None, Some(s)) => Some(s),
        _ => return Err(invalid("give exactly one of days or seconds")),
    }
    .filter(|s| (0..=20 * 366 * 86_400).contains(s))
    .ok_or_else(|| invalid("the clock moves forward only, by at most 20 years"))?;
    let (events, invoices, now) = {
        let mut state = sim.lock();
        let target = state.now() + seconds;
        let (events, invoices) = state.advance_clock(target).map_err(invalid)?;
        (events, invoices, state.now())
    };
    dispatch(&sim, events);
    Ok(Json(json!({ "now": now, "invoices": invoices })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardOutcome {
    email: String,
    outcome: String,
}

async fn set_card(
    State(sim): State<Simulator>,
    Json(card): Json<CardOutcome>,
) -> Result<Json<Value>, ApiError> {
    let decline = match card.outcome.as_str() {
        "succeed" => false,
        "decline" => true,
        other => {
            return Err(invalid(format!(
                "outcome {other:?} is not succeed or decline"
            )))
        }
    };
    sim.lock().set_card(&card.email, decline);
    Ok(Json(
        json!({ "email": card.email.to_lowercase(), "outcome": card.outcome }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimCancel {
    #[serde(default)]
    at_period_end: bool,
}

/// As if the customer cancelled in the processor's own portal.
async fn sim_cancel(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Json(req): Json<SimCancel>,
) -> Result<Json<Value>, ApiError> {
    cancel(&sim, &id, req.at_period_end, !req.at_period_end)
}
