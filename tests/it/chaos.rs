//! The whole system under faults and real crashes (spec §10, all
//! guarantees): `payledger chaos` drives 300 purchases through the pages and
//! the simulator with its faults switched on, kills `payledger run` with
//! SIGKILL at random moments and at named failpoints, cuts its database
//! connections, then reconciles, waits for quiescence and checks everything.

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
        report["charge_succeeded_events"], report["charges_at_processor"],
        "no charge lost or doubled"
    );
    assert_eq!(report["active_subscriptions"], 300);
    assert_eq!(report["emails_delivered"], 300);
    assert!(report["duplicate_emails"].as_u64().unwrap() <= report["kills"].as_u64().unwrap());
    assert!(out.status.success());
}
