//! The status page's "Update your card" button (spec §12): a renewal was
//! declined, and the processor's billing page — made on click, since its
//! link is short-lived — lets the customer give a working card. payledger
//! never sees the card.

use super::{internal_error, Site};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use payledger_projections::read::{customer_status, subscriptions};

pub async fn update_card(State(state): State<AppState>, Path(reference): Path<String>) -> Response {
    let site = &state.site;
    let reference = reference.trim().to_uppercase();
    let status_url = format!(
        "{}/status/{reference}",
        site.public_url.trim_end_matches('/')
    );
    let row = match customer_status::by_reference(&state.read, &reference).await {
        Ok(Some(row)) => row,
        Ok(None) => return not_renewing(site),
        Err(e) => return internal_error(site, &e),
    };
    let access = match &row.email {
        Some(email) => match subscriptions::by_email(&state.read, email).await {
            Ok(access) => access,
            Err(e) => return internal_error(site, &e),
        },
        None => None,
    };
    let Some(subscription_id) = access.and_then(|a| a.subscription_id) else {
        return not_renewing(site);
    };
    let Some(processor) = site.processor.as_ref() else {
        return internal_error(site, &"no processor is configured (STRIPE_API_KEY)");
    };
    let portal = async {
        let subscription = processor.retrieve_subscription(&subscription_id).await?;
        let customer = subscription.customer_id().unwrap_or_default().to_string();
        processor
            .create_billing_portal_session(&customer, &status_url)
            .await
    }
    .await;
    match portal {
        Ok(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
        Err(e) => internal_error(site, &e),
    }
}

fn not_renewing(site: &Site) -> Response {
    let write = format!(
        "If you think this is wrong, write to {}.",
        site.support_email
    );
    super::message(
        site,
        StatusCode::NOT_FOUND,
        "There is no card to update here",
        &[
            "This payment is not for a plan that renews, so there is no card on file to update.",
            &write,
        ],
        None,
    )
}
