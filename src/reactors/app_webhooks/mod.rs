//! Telling the product's application (spec §13): signed outgoing webhooks
//! for every change of a customer's access, per the open Standard Webhooks
//! specification.

pub mod endpoints;
pub mod queue;
pub mod sender;
pub mod signing;
