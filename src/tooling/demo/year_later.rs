//! Step 5 of the demo, "a year later" (spec §12): the processor's clock
//! moves a year, and `payledger run` (following it) sees a renewal that just
//! works, a card that declines and is updated, and a renewal whose webhook
//! is lost for good — found by asking the processor before access ends.

use super::application::check_told;
use super::stage::Stage;
use crate::tooling::app_receiver::AppReceiver;
use payledger_projections::states::DiscrepancyStatus;
use serde_json::json;

/// `ann` and `bea` bought in step 1 and 2; `dee` buys now, so her renewal
/// comes a little after theirs. Returns `dee`.
pub async fn a_year_later(
    s: &mut Stage,
    app: &AppReceiver,
    ann: &str,
    bea: &str,
) -> anyhow::Result<String> {
    let dee = s.email("dee");
    s.step(5, "A year later: the processor renews every subscription");
    s.sim_faults(json!({})).await?;
    s.buy(&dee).await?;
    let active = s.wait_active(&dee, 20).await?;
    s.check(active, &format!("{dee} bought the renewing plan too"));
    let (_, ann_end) = s.access_of(ann).await?;
    let (_, dee_end) = s.access_of(&dee).await?;
    s.sim_post("/_sim/cards", json!({"email": bea, "outcome": "decline"}))
        .await?;
    println!("  {bea}'s card will be declined from now on");

    // Up to just before Dee's renewal: Ann's and Bea's happen.
    s.advance_sim_to(dee_end.timestamp() - 5).await?;
    println!("  the processor's clock moved a year (payledger's follows it)");
    let receipt = s.wait_mail(ann, "renewal receipt", 30).await;
    s.check(
        receipt == 1,
        &format!("{ann}'s renewal just worked: one renewal receipt"),
    );
    let (_, ann_new) = s.access_of(ann).await?;
    s.check(
        ann_new > ann_end,
        &format!("{ann}'s access now runs to {}", ann_new.format("%Y-%m-%d")),
    );
    check_told(s, app, "subscription.renewed", ann).await;
    let dunning = s.wait_mail(bea, "did not go through", 30).await;
    s.check(
        dunning == 1,
        &format!("{bea}'s card was declined: one email, with the way to update it"),
    );
    check_told(s, app, "subscription.past_due", bea).await;
    let reference = s.reference_of(bea).await?;
    let page = s.get(&format!("/status/{reference}")).await?;
    s.says(bea, &page, "Update your card");
    let portal = s
        .post_for_redirect(&format!("/status/{reference}/card"))
        .await?;
    s.check(
        portal.starts_with(&format!("{}/portal/", s.sim_base)),
        "the button opened the processor's billing page",
    );
    let update = portal.replace('?', "/card?");
    s.sim_form(&update).await?;
    println!("  {bea} updates the card there; the processor retries at once");
    let receipt = s.wait_mail(bea, "renewal receipt", 30).await;
    s.check(
        receipt == 1,
        &format!("{bea}'s retry succeeded: one renewal receipt"),
    );
    let (status, _) = s.access_of(bea).await?;
    s.check(
        status == "active",
        &format!("{bea} is active again ({status})"),
    );
    check_told(s, app, "subscription.reactivated", bea).await;

    // Dee's renewal: every webhook about it is lost.
    s.sim_faults(json!({"drop": 1.0})).await?;
    s.advance_sim_to(dee_end.timestamp() + 5).await?;
    s.sim_faults(json!({})).await?;
    println!("  {dee}'s renewal happened at the processor; every webhook about it was dropped");
    let found = s.wait_access_beyond(&dee, dee_end, 30).await?;
    s.check(
        found,
        "before her access ended, payledger asked the processor and applied the renewal: no lockout",
    );
    let invoice = s
        .count(
            "SELECT count(*) FROM events WHERE event_type = 'InvoicePaid' AND payload->>'customer_email' = $1 AND metadata->>'actor' = 'system:renewal-check'",
            &dee,
        )
        .await?;
    s.check(invoice == 1, "the renewal was appended by the check, once");
    let subject = s.renewal_discrepancy_of(&dee).await?;
    let open = s
        .wait_discrepancy(&subject, DiscrepancyStatus::Open, 15)
        .await?;
    s.check(
        open,
        &format!("the discrepancy view shows what happened: {subject}"),
    );
    check_told(s, app, "subscription.renewed", &dee).await;
    Ok(dee)
}
