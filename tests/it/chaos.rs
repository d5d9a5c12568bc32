//! The whole system under faults and real crashes (spec §10, all
//! guarantees): `payledger chaos` drives 300 purchases through the pages and
//! the simulator with its faults switched on, kills `payledger run` with
//! SIGKILL at random moments and at named failpoints, cuts its database
//! connections — then moves the processor's clock a year (every plan renews;
//! a tenth of the cards decline every retry) with the same faults and kills
//! — then reconciles, waits for quiescence and checks everything.

#[test]
fn three_hundred_purchases_through_thirty_kills_lose_no_customer() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .args(["chaos", "--purchases", "300", "--seed", "3", "--json"])
        .env("RUST_LOG", "error")
        .output()
        .expect("run payledger chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("{report:#}");
    assert_eq!(report["purchases"], 300);
    assert!(report["kills"].as_u64().unwrap() >= 30, "{report}");
    assert!(report["failpoint_kills"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["violations"].as_array().unwrap().len(),
        0,
        "{report}"
    );
    assert_eq!(
        report["payments_recorded"], report["charges_at_processor"],
        "no charge lost or doubled (a renewal's as its paid invoice)"
    );
    // A year later: every renewal recorded once; the declined plans ended.
    let n = |k: &str| report[k].as_i64().unwrap();
    assert_eq!(n("active_subscriptions") + n("ended_subscriptions"), 300);
    assert!(n("ended_subscriptions") >= 1, "{report}");
    assert!(n("renewals_recorded") >= 250, "{report}");
    assert_eq!(n("renewals_recorded"), n("renewals_at_processor"));
    assert!(n("dunning_emails") >= 4, "{report}");
    assert_eq!(n("dunning_emails"), n("failed_attempts_recorded"));
    assert!(n("emails_delivered") >= 300, "{report}");
    assert!(report["duplicate_emails"].as_u64().unwrap() <= report["kills"].as_u64().unwrap());
    assert!(out.status.success());
}
