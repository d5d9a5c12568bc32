//! Read models derived from the event log (subscriptions, outgoing emails,
//! discrepancies, timeline) and the runner that keeps them current. Depends
//! only on the event vocabulary; the store reaches it through `src`.

pub use payledger_events as events;
