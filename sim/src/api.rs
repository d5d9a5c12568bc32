use super::delivery::dispatch;
use super::state::{empty_list, Faults, NewSession, SimState};
use super::Simulator;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use payledger_stripe::objects::{Dispute, Expandable, Refund};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

pub(crate) type Params = Vec<(String, String)>;

pub(crate) fn param<'a>(params: &'a Params, key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(crate) struct ApiError(pub StatusCode, pub &'static str, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "type": self.1, "message": self.2 } });
        (self.0, Json(body)).into_response()
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message.into(),
    )
}

pub(crate) fn missing(what: &str, id: &str) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No such {what}: '{id}'"),
    )
}

pub fn router(sim: Simulator) -> Router {
    let api = Router::new()
        .route(
            "/v1/checkout/sessions",
            post(create_session).get(list_sessions),
        )
        .route("/v1/checkout/sessions/{id}", get(retrieve_session))
        .route("/v1/charges", get(list_charges))
        .route("/v1/refunds", get(list_refunds).post(create_refund))
        .route("/v1/events", get(list_events))
        .route("/v1/disputes", get(list_disputes))
        .merge(crate::billing_api::api_routes())
        .layer(middleware::from_fn_with_state(sim.clone(), api_gate));
    Router::new()
        .merge(api)
        .route("/pay/{id}", get(pay_page).post(pay))
        .route("/_sim/faults", post(set_faults).get(get_faults))
        .route("/_sim/charges", post(sim_charge))
        .route("/_sim/disputes", post(sim_dispute))
        .route("/_sim/disputes/{id}/close", post(sim_close_dispute))
        .merge(crate::billing_api::sim_routes())
        .with_state(sim)
}

/// Bearer auth as the processor demands it, and the API fault switches.
async fn api_gate(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let authorised = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| !k.trim().is_empty());
    if !authorised {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key.".into(),
        )
        .into_response();
    }
    {
        let mut state = sim.lock();
        if state.faults.api_rate_limits > 0 {
            state.faults.api_rate_limits -= 1;
            return ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Too many requests".into(),
            )
            .into_response();
        }
        if state.faults.api_errors > 0 {
            state.faults.api_errors -= 1;
            return ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "Simulated server error".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// Newest first, `created[...]` filters, `starting_after` cursor, `limit`.
pub(crate) fn list<T: Serialize>(
    items: &[T],
    id: impl Fn(&T) -> &str,
    created: impl Fn(&T) -> i64,
    keep: impl Fn(&T) -> bool,
    params: &Params,
    url: &str,
) -> Result<Json<Value>, ApiError> {
    list_shown(items, id, created, keep, |x| x, params, url)
}

/// [`list`] of stored records, each shown as the object it holds.
pub(crate) fn list_shown<'a, T, S: Serialize>(
    items: &'a [T],
    id: impl Fn(&T) -> &str,
    created: impl Fn(&T) -> i64,
    keep: impl Fn(&T) -> bool,
    show: impl Fn(&'a T) -> S,
    params: &Params,
    url: &str,
) -> Result<Json<Value>, ApiError> {
    let limit: usize = match param(params, "limit") {
        Some(l) => l
            .parse()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| invalid("limit must be 1..100"))?,
        None => 10,
    };
    let bound = |key: &str| -> Result<Option<i64>, ApiError> {
        param(params, key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(format!("{key} must be a unix timestamp")))
            })
            .transpose()
    };
    let (gte, lte, gt, lt) = (
        bound("created[gte]")?,
        bound("created[lte]")?,
        bound("created[gt]")?,
        bound("created[lt]")?,
    );
    let in_window = |x: &T| {
        let c = created(x);
        gte.is_none_or(|b| c >= b)
            && lte.is_none_or(|b| c <= b)
            && gt.is_none_or(|b| c > b)
            && lt.is_none_or(|b| c < b)
    };
    let newest_first: Vec<&'a T> = items.iter().rev().collect();
    // As Stripe does, the cursor is a place in the whole ordering, not in the
    // filtered list: an object that stopped matching the filter between two
    // pages (an event delivered meanwhile) still marks where to go on.
    let after_cursor = match param(params, "starting_after") {
        Some(cursor) => {
            newest_first
                .iter()
                .position(|x| id(x) == cursor)
                .ok_or_else(|| invalid(format!("starting_after {cursor:?} is not in this list")))?
                + 1
        }
        None => 0,
    };
    let filtered: Vec<&'a T> = newest_first[after_cursor..]
        .iter()
        .copied()
        .filter(|x| in_window(x) && keep(x))
        .collect();
    let page: Vec<S> = filtered.iter().take(limit).map(|x| show(x)).collect();
    let has_more = filtered.len() > page.len();
    Ok(Json(
        json!({ "object": "list", "url": url, "has_more": has_more, "data": page }),
    ))
}

async fn create_session(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Result<Json<Value>, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("sessions:{k}"));
    if let Some(previous) = key
        .as_ref()
        .and_then(|k| sim.lock().idempotent_responses.get(k).cloned())
    {
        return Ok(Json(previous));
    }
    let mode = param(&params, "mode").unwrap_or("payment").to_string();
    let price = match (mode.as_str(), param(&params, "line_items[0][price]")) {
        ("subscription", Some(id)) => {
            Some(sim.lock().price(id).ok_or_else(|| missing("price", id))?)
        }
        ("subscription", None) => {
            return Err(invalid(
                "mode=subscription needs line_items[0][price] (a recurring price)",
            ))
        }
        (other, _) if other != "payment" => {
            return Err(invalid(format!(
                "mode {other:?} is not payment or subscription"
            )))
        }
        _ => None,
    };
    let amount: i64 = match &price {
        Some(p) => p.amount,
        None => param(&params, "line_items[0][price_data][unit_amount]")
            .ok_or_else(|| invalid("line_items[0][price_data][unit_amount] is required"))?
            .parse()
            .map_err(|_| invalid("unit_amount must be an integer"))?,
    };
    let quantity: i64 = param(&params, "line_items[0][quantity]")
        .unwrap_or("1")
        .parse()
        .map_err(|_| invalid("bad quantity"))?;
    if amount <= 0 || quantity <= 0 {
        return Err(invalid("amount and quantity must be positive"));
    }
    let currency = match &price {
        Some(p) => p.currency.clone(),
        None => param(&params, "line_items[0][price_data][currency]")
            .ok_or_else(|| invalid("line_items[0][price_data][currency] is required"))?
            .to_lowercase(),
    };
    let success_url =
        param(&params, "success_url").ok_or_else(|| invalid("success_url is required"))?;
    let metadata_of = |prefix: &str| -> BTreeMap<String, String> {
        params
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(']'))
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect()
    };
    let mut state = sim.lock();
    let new = NewSession {
        amount: amount * quantity,
        currency,
        client_reference_id: param(&params, "client_reference_id").map(str::to_string),
        customer_email: param(&params, "customer_email").map(str::to_string),
        mode,
        success_url: Some(success_url.to_string()),
        cancel_url: param(&params, "cancel_url").map(str::to_string),
        metadata: metadata_of("metadata["),
        payment_intent_metadata: metadata_of("payment_intent_data[metadata]["),
        subscription_metadata: metadata_of("subscription_data[metadata]["),
        price,
    };
    let now = state.now();
    let session = state.open_session(new, &sim.config.public_url, now);
    let response = serde_json::to_value(session).map_err(|e| invalid(e.to_string()))?;
    if let Some(k) = key {
        state.idempotent_responses.insert(k, response.clone());
    }
    Ok(Json(response))
}

async fn retrieve_session(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let s = state
        .sessions
        .iter()
        .find(|s| s.id == id)
        .ok_or_else(|| missing("checkout.session", &id))?;
    Ok(Json(
        serde_json::to_value(s).map_err(|e| invalid(e.to_string()))?,
    ))
}

async fn list_sessions(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let status = param(&params, "status").map(str::to_string);
    let payment_status = param(&params, "payment_status").map(str::to_string);
    list(
        &state.sessions,
        |s| &s.id,
        |s| s.created,
        |s| {
            status
                .as_deref()
                .is_none_or(|st| s.status.as_deref() == Some(st))
                && payment_status
                    .as_deref()
                    .is_none_or(|p| s.payment_status == p)
        },
        &params,
        "/v1/checkout/sessions",
    )
}

async fn list_charges(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let payment_intent = param(&params, "payment_intent").map(str::to_string);
    list(
        &state.charges,
        |c| &c.id,
        |c| c.created,
        |c| {
            payment_intent
                .as_deref()
                .is_none_or(|p| c.payment_intent.as_ref().and_then(|x| x.id()) == Some(p))
        },
        &params,
        "/v1/charges",
    )
}

async fn list_refunds(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    list(
        &state.refunds,
        |r| &r.id,
        |r| r.created,
        |_| true,
        &params,
        "/v1/refunds",
    )
}

async fn list_disputes(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    list(
        &state.disputes,
        |d| &d.id,
        |d| d.created,
        |_| true,
        &params,
        "/v1/disputes",
    )
}

async fn list_events(
    State(sim): State<Simulator>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let state = sim.lock();
    let kind = param(&params, "type").map(str::to_string);
    let delivery = match param(&params, "delivery_success") {
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(invalid(format!(
                "delivery_success must be true or false, not {other:?}"
            )))
        }
        None => None,
    };
    list_shown(
        &state.events,
        |e| &e.id,
        |e| e.created,
        |e| {
            kind.as_deref().is_none_or(|k| e.event_type == k)
                && delivery.is_none_or(|d| e.delivered == d)
        },
        |e| e.wire(),
        &params,
        "/v1/events",
    )
}

async fn create_refund(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Form(params): Form<Params>,
) -> Result<Json<Value>, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let events;
    let response;
    {
        let mut state = sim.lock();
        let key = key.map(|k| format!("refunds:{k}"));
        if let Some(previous) = key.as_ref().and_then(|k| state.idempotent_responses.get(k)) {
            return Ok(Json(previous.clone()));
        }
        let refund = refund_in(&mut state, &params)?;
        response = serde_json::to_value(&refund).map_err(|e| invalid(e.to_string()))?;
        if let Some(k) = key {
            state.idempotent_responses.insert(k, response.clone());
        }
        let charge_id = refund
            .charge
            .as_ref()
            .and_then(|c| c.id())
            .unwrap_or_default()
            .to_string();
        let charge = state.charges.iter().find(|c| c.id == charge_id).cloned();
        let charge = serde_json::to_value(charge).map_err(|e| invalid(e.to_string()))?;
        events = vec![state.record_event("charge.refunded", charge, refund.created)];
    }
    dispatch(&sim, events);
    Ok(Json(response))
}

fn refund_in(state: &mut SimState, params: &Params) -> Result<Refund, ApiError> {
    let target = param(params, "payment_intent")
        .or(param(params, "charge"))
        .ok_or_else(|| invalid("payment_intent or charge is required"))?;
    let index = state
        .charges
        .iter()
        .position(|c| {
            c.id == target || c.payment_intent.as_ref().and_then(|p| p.id()) == Some(target)
        })
        .ok_or_else(|| missing("payment", target))?;
    let remaining = state.charges[index].amount - state.charges[index].amount_refunded;
    let amount: i64 = match param(params, "amount") {
        Some(a) => a
            .parse()
            .map_err(|_| invalid("amount must be an integer"))?,
        None => remaining,
    };
    if amount <= 0 || amount > remaining {
        return Err(invalid(format!(
            "Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining})"
        )));
    }
    let id = state.new_id("re");
    let charge = &state.charges[index];
    let refund = Refund {
        id,
        object: "refund".into(),
        amount,
        charge: Some(Expandable::Id(charge.id.clone())),
        payment_intent: charge.payment_intent.clone(),
        currency: charge.currency.clone(),
        created: state.now(),
        reason: param(params, "reason").map(str::to_string),
        status: Some("succeeded".into()),
        metadata: Some(BTreeMap::new()),
    };
    let charge = &mut state.charges[index];
    charge.amount_refunded += amount;
    charge.refunded = charge.amount_refunded >= charge.amount;
    charge
        .refunds
        .get_or_insert_with(|| empty_list("/v1/refunds"))
        .data
        .push(refund.clone());
    state.refunds.push(refund.clone());
    Ok(refund)
}

async fn pay_page(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    let state = sim.lock();
    let Some(s) = state.sessions.iter().find(|s| s.id == id) else {
        return (
            StatusCode::NOT_FOUND,
            Html(
                "<!doctype html><title>Not found</title><p>No such checkout session.</p>"
                    .to_string(),
            ),
        )
            .into_response();
    };
    let amount = s.amount_total.unwrap_or(0);
    let currency = s.currency.clone().unwrap_or_default();
    let shown = payledger_events::Currency::new(&currency)
        .map(|c| c.format_amount(amount))
        .unwrap_or_default();
    let email = html_escape(s.customer_email.as_deref().unwrap_or(""));
    let state_line = if s.payment_status == "paid" {
        "<p>This session is already paid.</p>"
    } else {
        ""
    };
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Pay {shown}</title></head><body>\
         <h1>Simulated processor</h1><p>Amount due: <strong id=\"amount\">{shown}</strong></p>{state_line}\
         <form method=\"post\"><label>Email <input name=\"email\" type=\"email\" value=\"{email}\"></label>\
         <button type=\"submit\" id=\"pay\">Pay {shown}</button></form></body></html>"
    ))
    .into_response()
}

#[derive(Deserialize)]
struct PayForm {
    #[serde(default)]
    email: Option<String>,
}

async fn pay(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Form(form): Form<PayForm>,
) -> Response {
    let (events, success_url, no_redirect) = {
        let mut state = sim.lock();
        let now = state.now();
        let events = match state.pay_session(&id, form.email, now) {
            Ok(e) => e,
            Err(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Html(format!("<!doctype html><p>{}</p>", html_escape(&message))),
                )
                    .into_response()
            }
        };
        let url = state
            .sessions
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.success_url.clone())
            .unwrap_or_default();
        (events, url, state.faults.no_redirect)
    };
    dispatch(&sim, events);
    if no_redirect {
        // The charge went through; the customer's browser never comes back.
        return (
            StatusCode::OK,
            Html("<!doctype html><html><body></body></html>".to_string()),
        )
            .into_response();
    }
    Redirect::to(&success_url.replace("{CHECKOUT_SESSION_ID}", &id)).into_response()
}

async fn set_faults(
    State(sim): State<Simulator>,
    faults: Result<Json<Faults>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Faults>, ApiError> {
    let Json(faults) = faults.map_err(|e| invalid(format!("faults: {}", e.body_text())))?;
    if !(0.0..=1.0).contains(&faults.drop) || !(0.0..=1.0).contains(&faults.duplicate) {
        return Err(invalid(
            "drop and duplicate are probabilities between 0 and 1",
        ));
    }
    sim.set_faults(faults.clone());
    Ok(Json(faults))
}

async fn get_faults(State(sim): State<Simulator>) -> Json<Faults> {
    Json(sim.lock().faults.clone())
}

#[derive(Deserialize)]
struct SimChargeRequest {
    /// Empty: a charge that names no customer (e.g. a wallet without email).
    #[serde(default)]
    email: String,
    /// Without `price`: the amount of a one-time payment.
    #[serde(default)]
    amount: i64,
    #[serde(default)]
    currency: String,
    #[serde(default)]
    client_reference_id: Option<String>,
    /// A renewing plan's price: a paid first invoice of a new subscription.
    #[serde(default)]
    price: Option<String>,
}

/// As if a customer had paid: a completed session, its payment intent and
/// charge (or, with a `price`, its subscription and first invoice), and the
/// events (delivered according to the faults).
async fn sim_charge(
    State(sim): State<Simulator>,
    Json(req): Json<SimChargeRequest>,
) -> Result<Json<Value>, ApiError> {
    let price = match &req.price {
        Some(id) => Some(sim.lock().price(id).ok_or_else(|| missing("price", id))?),
        None => None,
    };
    if price.is_none() && req.amount <= 0 {
        return Err(invalid("amount must be positive (or give a price)"));
    }
    let (events, session) = {
        let mut state = sim.lock();
        let mut reference = BTreeMap::new();
        if let Some(r) = &req.client_reference_id {
            reference.insert(
                payledger_stripe::objects::CHECKOUT_REFERENCE_KEY.into(),
                r.clone(),
            );
        }
        let new = NewSession {
            amount: price.as_ref().map_or(req.amount, |p| p.amount),
            currency: price
                .as_ref()
                .map_or(req.currency.clone(), |p| p.currency.clone()),
            client_reference_id: req.client_reference_id.clone(),
            customer_email: Some(req.email.clone()).filter(|e| !e.is_empty()),
            mode: if price.is_some() {
                "subscription"
            } else {
                "payment"
            }
            .into(),
            payment_intent_metadata: if price.is_some() {
                BTreeMap::new()
            } else {
                reference.clone()
            },
            subscription_metadata: reference,
            price,
            ..NewSession::default()
        };
        let now = state.now();
        let id = state.open_session(new, &sim.config.public_url, now).id;
        let events = state
            .pay_session(&id, Some(req.email), now)
            .map_err(invalid)?;
        let session = state
            .session_mut(&id)
            .cloned()
            .ok_or_else(|| invalid("session vanished"))?;
        (events, session)
    };
    let event_ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    dispatch(&sim, events);
    let state = sim.lock();
    let invoice = session.invoice.as_ref().and_then(|i| i.id());
    let pi = session
        .payment_intent
        .as_ref()
        .and_then(|p| p.id())
        .or_else(|| {
            state
                .billing
                .invoices
                .iter()
                .rev()
                .find(|i| Some(i.id.as_str()) == invoice)
                .and_then(|i| i.payment_id())
        })
        .map(str::to_string);
    let charge_id = state
        .charges
        .iter()
        .rev()
        .find(|c| c.payment_intent.as_ref().and_then(|p| p.id()) == pi.as_deref())
        .map(|c| c.id.clone());
    Ok(Json(json!({
        "session_id": session.id,
        "payment_intent_id": pi,
        "charge_id": charge_id,
        "subscription_id": session.subscription.as_ref().and_then(|s| s.id()),
        "invoice_id": invoice,
        "event_ids": event_ids,
    })))
}

#[derive(Deserialize)]
struct SimDisputeRequest {
    payment_intent: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn sim_dispute(
    State(sim): State<Simulator>,
    Json(req): Json<SimDisputeRequest>,
) -> Result<Json<Value>, ApiError> {
    let (events, dispute) = {
        let mut state = sim.lock();
        let charge = state
            .charges
            .iter()
            .find(|c| {
                c.payment_intent.as_ref().and_then(|p| p.id()) == Some(req.payment_intent.as_str())
            })
            .cloned()
            .ok_or_else(|| missing("payment_intent", &req.payment_intent))?;
        let dispute = Dispute {
            id: state.new_id("dp"),
            object: "dispute".into(),
            amount: charge.amount,
            charge: Expandable::Id(charge.id.clone()),
            payment_intent: charge.payment_intent.clone(),
            currency: charge.currency.clone(),
            created: state.now(),
            reason: req.reason.or(Some("fraudulent".into())),
            status: "needs_response".into(),
        };
        if let Some(c) = state.charges.iter_mut().find(|c| c.id == charge.id) {
            c.disputed = true;
        }
        state.disputes.push(dispute.clone());
        let object = serde_json::to_value(&dispute).map_err(|e| invalid(e.to_string()))?;
        (
            vec![state.record_event("charge.dispute.created", object, dispute.created)],
            dispute,
        )
    };
    dispatch(&sim, events);
    Ok(Json(
        serde_json::to_value(dispute).map_err(|e| invalid(e.to_string()))?,
    ))
}

#[derive(Deserialize)]
struct SimCloseDisputeRequest {
    status: String,
}

/// Ends a dispute as the card network would: `won` or `lost`.
async fn sim_close_dispute(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    Json(req): Json<SimCloseDisputeRequest>,
) -> Result<Json<Value>, ApiError> {
    if !matches!(req.status.as_str(), "won" | "lost") {
        return Err(invalid(format!(
            "status must be won or lost, not {:?}",
            req.status
        )));
    }
    let (events, dispute) = {
        let mut state = sim.lock();
        let dispute = {
            let d = state
                .disputes
                .iter_mut()
                .find(|d| d.id == id)
                .ok_or_else(|| missing("dispute", &id))?;
            d.status = req.status.clone();
            d.clone()
        };
        let object = serde_json::to_value(&dispute).map_err(|e| invalid(e.to_string()))?;
        (
            vec![{
                let now = state.now();
                state.record_event("charge.dispute.closed", object, now)
            }],
            dispute,
        )
    };
    dispatch(&sim, events);
    Ok(Json(
        serde_json::to_value(dispute).map_err(|e| invalid(e.to_string()))?,
    ))
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
