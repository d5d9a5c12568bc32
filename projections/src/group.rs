//! Projections folding one shared ledger (issue 19). Every projection runs
//! the payment rules (`crate::ledger`) on its own copy of the ledger, so a
//! rebuild of all five folded the rules five times and wrote five copies of
//! the same rows. A group applies each event to one ledger first, then lets
//! each member apply it with that ledger swapped in for its own:
//!
//! * a member's `track` of the event answers what the ledger's did;
//! * before that call its reads see the rows as they were before the event
//!   (the ledger remembers what the event's writes replaced), after it as
//!   they are — what its private copy would have shown at each moment.
//!
//! So a member's rows are the same function of the log with or without the
//! group (a property test folds both ways and compares).

use crate::ledger::Ledger;
use crate::projection::{Projection, ProjectionRows};
use crate::runner::caught;
use crate::table::Db;
use payledger_events::{DomainEvent, RecordedEvent};
use std::sync::Arc;

/// Which part of a group failed on an event, and why.
#[derive(Debug)]
pub struct GroupFailure {
    /// `None`: the shared ledger's own rules (every member depends on it).
    pub member: Option<&'static str>,
    pub reason: GroupReason,
}

#[derive(Debug)]
pub enum GroupReason {
    Database(tokio_postgres::Error),
    Panic(String),
}

impl std::fmt::Display for GroupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self.member.unwrap_or("the shared ledger");
        match &self.reason {
            GroupReason::Database(e) => write!(f, "{who}: {e}"),
            GroupReason::Panic(p) => write!(f, "{who}: {p}"),
        }
    }
}

struct Member {
    projection: Arc<dyn Projection>,
    rows: Box<dyn ProjectionRows>,
}

/// The members' rows and the ledger they share.
pub struct GroupRows {
    ledger: Ledger,
    members: Vec<Member>,
}

impl GroupRows {
    pub fn new(projections: &[Arc<dyn Projection>]) -> GroupRows {
        GroupRows {
            ledger: Ledger::default(),
            members: projections
                .iter()
                .map(|p| Member {
                    projection: p.clone(),
                    rows: p.rows(),
                })
                .collect(),
        }
    }

    /// Everything stays in memory, to be written whole (rebuild, replay).
    pub fn in_memory_only(&mut self) {
        self.ledger.in_memory_only();
        for m in &mut self.members {
            m.rows.in_memory_only();
        }
    }

    pub fn handles(&self, event_type: &str) -> bool {
        self.members
            .iter()
            .any(|m| m.projection.handles(event_type))
    }

    /// Applies `event` to the ledger, then to each member that handles it.
    pub async fn apply(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), GroupFailure> {
        if !self.handles(&event.event_type) {
            return Ok(());
        }
        let failed = |member, reason| GroupFailure { member, reason };
        match caught(self.ledger.track_shared(db, event, decoded)).await {
            Err(panic) => return Err(failed(None, GroupReason::Panic(panic))),
            Ok(Err(e)) => return Err(failed(None, GroupReason::Database(e))),
            Ok(Ok(())) => {}
        }
        for m in &mut self.members {
            if !m.projection.handles(&event.event_type) {
                continue;
            }
            if let Some(own) = m.rows.ledger_slot() {
                std::mem::swap(own, &mut self.ledger);
                own.begin_member();
            }
            let applied = caught(m.rows.apply(db, event, decoded)).await;
            if let Some(own) = m.rows.ledger_slot() {
                std::mem::swap(own, &mut self.ledger);
            }
            let name = Some(m.projection.name());
            match applied {
                Err(panic) => return Err(failed(name, GroupReason::Panic(panic))),
                Ok(Err(e)) => return Err(failed(name, GroupReason::Database(e))),
                Ok(Ok(())) => {}
            }
        }
        Ok(())
    }

    /// Each member's tables, printed in key order, without the ledger
    /// (which the group holds once): comparable with a member folded alone
    /// once its `ledger` entry is left out.
    pub fn snapshots(&self) -> Vec<(&'static str, crate::fold::TableRows)> {
        self.members
            .iter()
            .map(|m| {
                let mut tables = m.rows.snapshot();
                tables.retain(|(table, _)| *table != "ledger");
                (m.projection.name(), tables)
            })
            .collect()
    }

    /// The shared ledger's rows, printed.
    pub fn ledger_snapshot(&self) -> Vec<String> {
        self.ledger.snapshot()
    }
}
