//! `payledger demo`: the seed story, end to end, on the local PostgreSQL —
//! with the simulator as processor, `payledger run` as a child process that
//! is really killed, and a mail directory. Every claim printed is checked;
//! the exit status says whether all held.

mod application;
pub mod stage;
mod year_later;

use payledger_projections::states::DiscrepancyStatus;
use stage::Stage;

pub async fn run(database_url: &str, reset: bool, keep_running: bool) -> anyhow::Result<bool> {
    let mut s = Stage::set_up(database_url, "payledger_demo", reset, false, rand::random()).await?;
    let outcome = play(&mut s).await;
    if let Err(e) = &outcome {
        s.check(false, &format!("the demo could not go on: {e:#}"));
    }
    s.end_state().await;
    let ok = s.failures == 0;
    println!();
    if ok {
        println!("All {} checks held.", s.checks);
    } else {
        println!("{} of {} checks FAILED.", s.failures, s.checks);
    }
    if keep_running {
        println!(
            "\nStill running (Ctrl-C or SIGTERM to stop): shop {}  simulator {}",
            s.base, s.sim_base
        );
        // Either signal stops the `run` child too: a demo stopped by a
        // service manager must not leave a shop running behind it.
        payledger::shutdown::signal().await;
    }
    s.stop_server();
    Ok(ok)
}

async fn play(s: &mut Stage) -> anyhow::Result<()> {
    let app = application::connect(s).await?;
    let ann = s.email("ann");
    s.step(1, "A normal purchase of the $249 one-year plan");
    s.start_server(None).await?;
    let session = s.buy(&ann).await?;
    let active = s.wait_active(&ann, 20).await?;
    s.check(
        active,
        &format!("webhook recorded, subscription of {ann} active for one year"),
    );
    let page = s
        .get(&format!("/checkout/return?session_id={session}"))
        .await?;
    s.says("customer", &page, "You're in");
    let mail = s.wait_mail(&ann, "Your receipt", 20).await;
    s.check(
        mail == 1,
        &format!(
            "one confirmation email for {ann} in {}",
            s.mail_dir.display()
        ),
    );
    application::check_told(s, &app, "subscription.activated", &ann).await;

    let bea = s.email("bea");
    s.step(
        2,
        "The seed story: the processor charges, and payledger dies right after",
    );
    s.restart_server(Some("webhook.before_append")).await?;
    s.sim_faults(serde_json::json!({"endpoint_down": false}))
        .await?;
    let session = s.buy(&bea).await?;
    let died = s.wait_server_death(10).await;
    s.check(died, "payledger was killed with SIGKILL at failpoint webhook.before_append, before the charge was recorded");
    s.sim_faults(serde_json::json!({"endpoint_down": true}))
        .await?;
    s.restart_server(None).await?;
    let page = s
        .get(&format!("/checkout/return?session_id={session}"))
        .await?;
    s.says(
        "customer (instead of a blank page)",
        &page,
        "Your payment may still be arriving",
    );
    println!("  … the processor keeps retrying its webhook; the endpoint comes back");
    s.sim_faults(serde_json::json!({"endpoint_down": false}))
        .await?;
    let active = s.wait_active(&bea, 30).await?;
    s.check(
        active,
        &format!("the webhook retry landed: subscription of {bea} active"),
    );
    let charges = s.count("SELECT count(*) FROM events WHERE event_type = 'ChargeSucceeded' AND payload->>'customer_email' = $1", &bea).await?;
    s.check(charges == 1, "exactly one ChargeSucceeded for that payment");
    let page = s
        .get(&format!("/checkout/return?session_id={session}"))
        .await?;
    s.says("customer, refreshing", &page, "You're in");
    let mail = s.wait_mail(&bea, "Your receipt", 20).await;
    s.check(mail == 1, &format!("one confirmation email for {bea}"));

    let cal = s.email("cal");
    s.step(
        3,
        "Worse: the order was never written and the webhook is dropped for good",
    );
    s.sim_faults(serde_json::json!({"drop": 1.0})).await?;
    let pi = s.orphan_charge(Some(&cal)).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let seen = s.count("SELECT count(*) FROM events WHERE event_type = 'ChargeSucceeded' AND payload->>'payment_id' = $1", &pi).await?;
    s.check(
        seen == 0,
        &format!("the processor charged {cal} ({pi}), and payledger knows nothing of it"),
    );
    let report = s.reconcile().await?;
    s.check(
        report.appended.iter().any(|a| a.contains(&pi)),
        &format!("reconciliation asked the processor and appended ChargeSucceeded {pi}"),
    );
    let open = s
        .wait_discrepancy(
            &format!("unmatched_charge:{pi}"),
            DiscrepancyStatus::Open,
            15,
        )
        .await?;
    s.check(
        open,
        "the discrepancy view shows it by itself: an open unmatched_charge",
    );
    let rescued = s.wait_active(&cal, 30).await?;
    s.check(rescued, "auto-rescue matched it (amount fits exactly one plan, email on the charge): subscription active");
    let mail = s.wait_mail(&cal, "Your account is active", 20).await;
    s.check(mail == 1, "one rescue email (and no plain confirmation)");
    application::check_told(s, &app, "subscription.activated", &cal).await;

    let pat = s.email("pat");
    s.step(4, "A case for a person: a charge with no email on it");
    let pi = s.orphan_charge(None).await?;
    s.reconcile().await?;
    let open = s
        .wait_discrepancy(
            &format!("unmatched_charge:{pi}"),
            DiscrepancyStatus::Open,
            15,
        )
        .await?;
    s.check(
        open,
        &format!("reconciliation found {pi}: an open unmatched_charge"),
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let matched = s.count("SELECT count(*) FROM events WHERE event_type = 'ChargeMatched' AND payload->>'payment_id' = $1", &pi).await?;
    s.check(
        matched == 0,
        "auto-rescue left it alone: no email, so nobody to give access to",
    );
    println!("  {pat} writes in: \"I was charged $249 and have nothing\"");
    s.cli(&["support", "queue"]).await;
    s.cli(&["support", "find", &pi]).await;
    let rescue = s
        .cli(&[
            "support", "rescue", &pi, "--email", &pat, "--as", "demo", "--yes",
        ])
        .await;
    s.check(
        rescue.contains("done:"),
        "support rescue --as demo matched the charge",
    );
    let active = s.wait_active(&pat, 20).await?;
    s.check(active, &format!("subscription of {pat} active"));
    let reply = s.cli(&["support", "reply", &pat, "--sign", "Demo"]).await;
    s.check(
        reply.contains("a fault on our side"),
        "support reply has the words ready to paste",
    );
    let mail = s.wait_mail(&pat, "Your account is active", 20).await;
    s.check(mail == 1, "one rescue email");

    let dee = year_later::a_year_later(s, &app, &ann, &bea).await?;
    application::leaving(s, &app, &ann, &dee).await
}
