//! A payment's situation and the details its words quote, read from the
//! read models: what the page, the reply and the consistency test share.

use super::words::{day, until, Details};
use super::{of_payment, Facts, Renewal, Situation};
use crate::plans::Plans;
use chrono::{DateTime, Duration, Utc};
use payledger_projections::read::customer_status::CustomerStatusRow;
use payledger_projections::read::{discrepancies, subscriptions, ReadModels};
use payledger_projections::states::DiscrepancyKind;
use payledger_store::StoreError;

/// Where the words come from besides the row.
pub struct Context<'a> {
    pub plans: &'a Plans,
    pub support_email: &'a str,
    pub now: DateTime<Utc>,
    pub pending_window: Duration,
    /// PAYLEDGER_TIMEZONE.
    pub zone: chrono_tz::Tz,
}

/// The situation of one row: its row, the queue's entry about it, the time.
pub async fn situation_only(
    read: &ReadModels,
    row: &CustomerStatusRow,
    now: DateTime<Utc>,
    pending_window: Duration,
) -> Result<Situation, StoreError> {
    let open = match &row.payment_id {
        Some(p) => discrepancies::open_about_payment(read, p).await?,
        None => None,
    };
    Ok(of_payment(&Facts {
        row,
        open,
        now,
        pending_window,
        renewal: renewal_of(read, row).await?,
    }))
}

/// Where the subscription this payment bought stands, when it bought one.
async fn renewal_of(
    read: &ReadModels,
    row: &CustomerStatusRow,
) -> Result<Option<Renewal>, StoreError> {
    let Some(email) = &row.email else {
        return Ok(None);
    };
    let Some(access) = subscriptions::by_email(read, email).await? else {
        return Ok(None);
    };
    if access.subscription_id.is_none() || row.plan.as_deref() != Some(access.plan.as_str()) {
        return Ok(None);
    }
    let late = discrepancies::unresolved_of_customer(read, Some(email), &[])
        .await?
        .iter()
        .any(|d| d.kind == DiscrepancyKind::RenewalNotApplied);
    Ok(Some(Renewal {
        status: access.status,
        late,
    }))
}

/// The situation of one row, and the details to say it with.
pub async fn situation_of(
    read: &ReadModels,
    row: &CustomerStatusRow,
    ctx: &Context<'_>,
) -> Result<(Situation, Details), StoreError> {
    let situation = situation_only(read, row, ctx.now, ctx.pending_window).await?;
    let access_until = match &row.email {
        Some(e) => subscriptions::by_email(read, e)
            .await?
            .filter(|s| s.grants_access_at(ctx.now))
            .map(|s| s.period_end),
        None => None,
    };
    Ok((situation, details(row, access_until, ctx)))
}

pub fn details(
    row: &CustomerStatusRow,
    access_until: Option<DateTime<Utc>>,
    ctx: &Context<'_>,
) -> Details {
    let plan_id = row.plan.clone().unwrap_or_default();
    let plan = ctx
        .plans
        .get(&plan_id)
        .map(|p| p.name.clone())
        .unwrap_or_else(|| {
            if plan_id.is_empty() {
                "plan".into()
            } else {
                plan_id.clone()
            }
        });
    let (paid, refunded, net) =
        Details::money(row.amount, row.currency.as_deref(), row.refunded_amount);
    Details {
        reference: row.reference.clone(),
        plan,
        paid,
        refunded,
        net,
        paid_on: row.paid_at.map(|at| day(at, ctx.zone)),
        started_on: day(row.started_at, ctx.zone),
        access_until: access_until.map(|at| until(at, ctx.zone)),
        masked_email: row
            .email
            .as_deref()
            .map(masked_email)
            .unwrap_or_else(|| "the address you gave".into()),
        support_email: ctx.support_email.to_string(),
    }
}

/// `a***@example.com`: enough for the customer to recognise, not enough for
/// someone else holding the link to learn the address.
pub fn masked_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "your email address".into(),
    }
}
