//! The card processor: its wire objects, the API client, and the simulator
//! that stands in for it in development, tests and the demo.

pub mod client;

/// The processor's payloads are a few KiB; anything near this is not one
/// (and no request to payledger needs more).
pub const MAX_CALLBACK_BYTES: usize = 1 << 20;

pub mod mapping;
pub mod signature;
pub mod sim;
pub mod stripe;
