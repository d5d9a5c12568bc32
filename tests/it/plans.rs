//! `PAYLEDGER_PLANS`: the shipped example loads; a missing or malformed file
//! stops start-up with a message that names the setting and the problem.

use payledger::plans::Plans;

#[test]
fn the_shipped_example_has_the_249_dollar_one_year_plan() {
    let plans = Plans::load(concat!(env!("CARGO_MANIFEST_DIR"), "/plans.example.toml")).unwrap();
    let annual = plans.get("annual").unwrap();
    assert_eq!(
        (
            annual.amount,
            annual.currency.as_str(),
            annual.period,
            annual.renews
        ),
        (24900, "usd", payledger_events::Period::Year, true)
    );
    let once = plans.get("annual-once").unwrap();
    assert_eq!((once.amount, once.renews), (24900, false));
    assert_eq!(annual.price(), "249.00 USD");
}

#[test]
fn a_missing_file_names_the_setting_and_the_path() {
    let err = Plans::load("/nonexistent/plans.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PAYLEDGER_PLANS") && err.contains("/nonexistent/plans.toml"),
        "{err}"
    );
}

#[test]
fn malformed_plans_are_refused_with_the_reason() {
    let cases = [
        ("[[plan]]\nid = \"a\"\n", "missing field"),
        ("not toml at all ===", "not valid TOML"),
        ("", "no [[plan]]"),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=-5\ncurrency=\"usd\"\nperiod=\"year\"\n", "must be positive"),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=5\ncurrency=\"xyz\"\nperiod=\"year\"\n", "ISO 4217"),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=5\ncurrency=\"usd\"\nperiod=\"week\"\n", "\"month\" or \"year\""),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=5\ncurrency=\"usd\"\nperiod=\"month\"\nrenews=true\n", "needs processor_price_id"),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=5\ncurrency=\"usd\"\nperiod=\"year\"\n[[plan]]\nid=\"a\"\nname=\"B\"\namount=6\ncurrency=\"usd\"\nperiod=\"year\"\n", "appears twice"),
        ("[[plan]]\nid=\"a\"\nname=\"A\"\namount=5\ncurrency=\"usd\"\nperiod=\"year\"\nprice=1\n", "unknown field"),
    ];
    for (text, says) in cases {
        let err = Plans::parse(text, "plans.toml").unwrap_err().to_string();
        assert!(err.starts_with("PAYLEDGER_PLANS"), "{err}");
        assert!(err.contains(says), "{says:?} not in {err}");
    }
}

#[test]
fn serve_refuses_to_start_without_plans_and_says_which_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payledger"))
        .arg("serve")
        .env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/never-reached",
        )
        .env("STRIPE_WEBHOOK_SECRET", "whsec_x")
        .env_remove("PAYLEDGER_PLANS")
        .env("PAYLEDGER_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PAYLEDGER_PLANS"), "{err}");
}
