//! The card processor: its wire objects, the API client, and the simulator
//! that stands in for it in development, tests and the demo.

pub mod client;
pub mod sim;
pub mod stripe;
