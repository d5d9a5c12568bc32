//! The auditor's desk: the log, streamed; the hash chain; any read model as
//! it was at a time; and the guarantees checked on the live database. All
//! of it reads — the auditor role cannot append, and PostgreSQL enforces it.

pub mod checkpoint;
pub mod cli;
pub mod invariants;
pub mod log;
pub mod replay;
pub mod schedule;
