//! The processor's wire format, shared by payledger (which receives and
//! asks) and the simulator (which sends and answers): Stripe's objects as
//! it sends them, the `Stripe-Signature` scheme, and what each callback
//! means as domain events.

pub mod billing;
pub mod lifecycle;
pub mod mapping;
pub mod objects;
pub mod signature;
