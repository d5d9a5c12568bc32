//! Test support, not production code: the tests, `payledger bench` and the
//! fuzzer build the same histories and run the same targets from here.
//! Nothing in the app depends on it (`tests/it/architecture.rs`).

pub mod fuzz_targets;
pub mod history;
pub mod renewal_history;
