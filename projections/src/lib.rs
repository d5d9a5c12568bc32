//! Read models derived from the event log (subscriptions, outgoing emails,
//! discrepancies, timeline) and the runner that keeps them current. Every
//! projection is a deterministic function of the event sequence: no wall
//! clock, no randomness, no network.

pub mod customer_status;
pub mod discrepancies;
pub use payledger_store::feed;
pub mod fold;
pub mod group;
pub mod ledger;
pub mod lockstep;
pub mod outgoing_emails;
pub mod projection;
pub mod read;
pub mod rebuild;
pub mod renewals;
pub mod runner;
pub mod states;
pub mod subscriptions;
pub mod table;
pub mod testing;
pub mod timeline;

pub use payledger_events as events;
pub use projection::{Projection, ProjectionRows};

use std::sync::Arc;

/// Every projection payledger runs.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(subscriptions::Subscriptions),
        Arc::new(outgoing_emails::OutgoingEmails),
        Arc::new(discrepancies::Discrepancies),
        Arc::new(timeline::Timeline),
        Arc::new(customer_status::CustomerStatus),
    ]
}
