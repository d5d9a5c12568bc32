//! The card processor: the API client here; its wire format (objects,
//! signatures, what a callback means) in the `payledger-stripe` crate, which
//! the simulator shares.

pub mod client;

pub use payledger_stripe::{mapping, objects as stripe, signature};

/// The processor's callback bodies are a few KiB; anything near this is not one
/// (and no request to payledger needs more).
pub const MAX_CALLBACK_BYTES: usize = 1 << 20;
