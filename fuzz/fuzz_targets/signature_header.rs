#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payledger_testkit::fuzz_targets::signature_header(data);
});
