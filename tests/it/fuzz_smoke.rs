//! The fuzz targets of `payledger_testkit::fuzz_targets`, run on stable from a
//! fixed seed for a fixed time (`PAYLEDGER_FUZZ_SECONDS`, default 30) —
//! the CI smoke run. Long runs use libFuzzer: `cargo +nightly fuzz run
//! NAME` in `fuzz/` (docs/reliability.md has the counts).

use rand::{Rng, RngCore, SeedableRng};

fn smoke(name: &str, seed: u64, target: fn(&[u8])) {
    let seconds: u64 = std::env::var("PAYLEDGER_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let mut inputs = 0u64;
    // The default hook would print every caught panic; the failing input
    // is reported below instead.
    std::panic::set_hook(Box::new(|_| {}));
    while std::time::Instant::now() < deadline {
        for _ in 0..64 {
            let len = match rng.random_range(0..4) {
                0 => rng.random_range(0..16),
                1 => rng.random_range(0..256),
                _ => rng.random_range(0..4096),
            };
            let mut input = vec![0u8; len];
            rng.fill_bytes(&mut input);
            if let Err(panic) = std::panic::catch_unwind(|| target(&input)) {
                let _ = std::panic::take_hook();
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "{name}: input #{inputs} failed: {message}\ninput (hex): {}",
                    hex::encode(&input)
                );
            }
            inputs += 1;
        }
    }
    let _ = std::panic::take_hook();
    println!("{name}: {inputs} inputs in {seconds} s, none failed");
    assert!(inputs > 0);
}

#[test]
fn fuzz_signature_header() {
    smoke(
        "signature_header",
        1,
        payledger_testkit::fuzz_targets::signature_header,
    );
}

#[test]
fn fuzz_callback_body() {
    smoke(
        "callback_body",
        2,
        payledger_testkit::fuzz_targets::callback_body,
    );
}

#[test]
fn fuzz_event_history_fold() {
    smoke(
        "event_history_fold",
        3,
        payledger_testkit::fuzz_targets::event_history_fold,
    );
}
