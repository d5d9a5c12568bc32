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
use futures_util::future::{try_join, try_join_all};
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

/// The ledger a group shares, as a projection of its own: its generation
/// schema holds the ledger's tables, its checkpoint is the group's, and it
/// is never run alone.
pub struct SharedLedger;

pub const SHARED_LEDGER: &str = "ledger";

impl Projection for SharedLedger {
    fn name(&self) -> &'static str {
        SHARED_LEDGER
    }
    fn version(&self) -> i32 {
        1
    }
    fn handles(&self, event_type: &str) -> bool {
        ledger_handles(event_type)
    }
    fn schema_sql(&self) -> &'static str {
        crate::ledger::SCHEMA_SQL
    }
    fn public_tables(&self) -> &'static [&'static str] {
        &[]
    }
    fn rows(&self) -> Box<dyn ProjectionRows> {
        Box::<LedgerRows>::default()
    }
}

/// The ledger alone (what `SharedLedger::rows` gives; a group holds its
/// ledger itself).
#[derive(Default)]
pub struct LedgerRows {
    ledger: Ledger,
}

crate::projection_rows!(LedgerRows { ledger });

impl LedgerRows {
    async fn apply_event(
        &mut self,
        db: Db<'_>,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), tokio_postgres::Error> {
        self.ledger.track(db, event, decoded).await.map(|_| ())
    }
}

/// The event types some sharing projection handles: the ones the shared
/// ledger applies, whoever is in the group at the time (so its rows never
/// depend on membership).
pub fn ledger_handles(event_type: &str) -> bool {
    static TYPES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    TYPES
        .get_or_init(|| {
            let sharing = sharing();
            DomainEvent::TYPES
                .iter()
                .copied()
                .filter(|t| sharing.iter().any(|p| p.handles(t)))
                .collect()
        })
        .contains(&event_type)
}

/// Who an event of this type concerns in the group: the ledger (and so
/// every member) for a type it applies, else the members that handle it.
pub fn concerned(event_type: &str) -> String {
    if crate::ledger::TYPES.contains(&event_type) {
        return format!("{SHARED_LEDGER} (every projection that shares it)");
    }
    sharing()
        .iter()
        .filter(|p| p.handles(event_type))
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The projections payledger runs that share the ledger.
pub fn sharing() -> Vec<Arc<dyn Projection>> {
    crate::all()
        .into_iter()
        .filter(|p| p.shares_ledger())
        .collect()
}

impl GroupRows {
    /// The group's rows with every statement naming its schema: the
    /// ledger's `ledger_schema`, each member's its own (`schemas`, in the
    /// order of `projections`).
    pub fn in_schemas(
        projections: &[Arc<dyn Projection>],
        ledger_schema: &str,
        schemas: &[String],
    ) -> GroupRows {
        let mut group = GroupRows::new(projections);
        group.ledger.set_schema(&Arc::from(ledger_schema));
        for (m, schema) in group.members.iter_mut().zip(schemas) {
            m.rows.set_schema(&Arc::from(schema.as_str()));
        }
        group
    }

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
        ledger_handles(event_type)
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
        if crate::ledger::TYPES.contains(&event.event_type.as_str()) {
            match caught(self.ledger.track_shared(db, event, decoded)).await {
                Err(panic) => return Err(failed(None, GroupReason::Panic(panic))),
                Ok(Err(e)) => return Err(failed(None, GroupReason::Database(e))),
                Ok(Ok(())) => {}
            }
        }
        for m in &mut self.members {
            if !m.projection.handles(&event.event_type) {
                continue;
            }
            if let Some(own) = m.rows.ledger_slot() {
                std::mem::swap(own, &mut self.ledger);
                own.begin_member(event.position);
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
}

/// A group is folded as one projection's rows by a rebuild. A failure keeps
/// its member's name: a database error as it is, a panic as a panic that
/// names the member.
impl ProjectionRows for GroupRows {
    fn apply<'a>(
        &'a mut self,
        db: Db<'a>,
        event: &'a RecordedEvent,
        decoded: &'a DomainEvent,
    ) -> crate::projection::ApplyFuture<'a> {
        Box::pin(async move {
            match GroupRows::apply(self, db, event, decoded).await {
                Ok(()) => Ok(()),
                Err(GroupFailure {
                    reason: GroupReason::Database(e),
                    ..
                }) => Err(e),
                Err(failure) => std::panic::panic_any(failure.to_string()),
            }
        })
    }
    fn flush<'a>(
        &'a mut self,
        tx: &'a deadpool_postgres::Transaction<'a>,
    ) -> crate::projection::ApplyFuture<'a> {
        // Each writes its own tables: sent at once, as the reads are.
        Box::pin(async move {
            let GroupRows { ledger, members } = self;
            let members = try_join_all(members.iter_mut().map(|m| m.rows.flush(tx)));
            try_join(ledger.flush(tx), members).await?;
            Ok(())
        })
    }
    fn copy_into<'a>(
        &'a mut self,
        tx: &'a deadpool_postgres::Transaction<'a>,
    ) -> crate::projection::ApplyFuture<'a> {
        Box::pin(async move {
            self.ledger.copy_into(tx).await?;
            for m in &mut self.members {
                m.rows.copy_into(tx).await?;
            }
            Ok(())
        })
    }
    fn into_parts(self: Box<Self>) -> Vec<Box<dyn ProjectionRows>> {
        let GroupRows { ledger, members } = *self;
        let mut parts: Vec<Box<dyn ProjectionRows>> = vec![Box::new(LedgerRows { ledger })];
        parts.extend(members.into_iter().map(|m| m.rows));
        parts
    }
    fn in_memory_only(&mut self) {
        GroupRows::in_memory_only(self);
    }
    fn rehearse(&mut self) {
        self.ledger.rehearse();
        for m in &mut self.members {
            m.rows.rehearse();
        }
    }
    fn wanted(&mut self) -> crate::table::Wanted {
        let mut wanted = crate::table::Wanted::new();
        self.ledger.wanted_into(&mut wanted);
        for m in &mut self.members {
            crate::table::merge_wanted(&mut wanted, m.rows.wanted());
        }
        wanted
    }
    fn prefetch<'a>(
        &'a mut self,
        tx: &'a deadpool_postgres::Transaction<'a>,
        wanted: &'a crate::table::Wanted,
    ) -> crate::projection::ApplyFuture<'a> {
        // The members' reads are independent: sent at once, they share the
        // round trips (one task steps the whole group).
        Box::pin(async move {
            let GroupRows { ledger, members } = self;
            let members = try_join_all(members.iter_mut().map(|m| m.rows.prefetch(tx, wanted)));
            try_join(ledger.prefetch(tx, wanted), members).await?;
            Ok(())
        })
    }
    fn track_changes(&mut self) {
        self.ledger.track_changes();
        for m in &mut self.members {
            m.rows.track_changes();
        }
    }
    fn resident_bytes(&self) -> usize {
        self.ledger.resident_bytes()
            + self
                .members
                .iter()
                .map(|m| m.rows.resident_bytes())
                .sum::<usize>()
    }
    fn evict(&mut self) {
        self.ledger.evict();
        for m in &mut self.members {
            m.rows.evict();
        }
    }
    fn evict_cold(&mut self) {
        self.ledger.evict_cold();
        for m in &mut self.members {
            m.rows.evict_cold();
        }
    }
    fn snapshot(&self) -> crate::fold::TableRows {
        let mut tables = vec![("ledger", self.ledger.snapshot())];
        for (_, member) in self.snapshots() {
            tables.extend(member);
        }
        tables
    }
}
