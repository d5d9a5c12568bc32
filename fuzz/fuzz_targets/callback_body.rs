#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    payledger::fuzz_targets::callback_body(data);
});
