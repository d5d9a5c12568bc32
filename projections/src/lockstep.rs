//! The projections that share the ledger run in lockstep (issue 19,
//! docs/projections.md): one transaction per batch applies each event to the
//! shared ledger and then to every member (`crate::group`), and moves the
//! ledger's checkpoint and every member's together. The ledger is a row of
//! `projection_state` of its own (`SharedLedger`, its tables in its own
//! generation schema); a member is *in* the group while it runs at the
//! ledger's checkpoint.
//!
//! What this costs in isolation: a poison event in one member's own rules
//! stops that member only (the group goes on without it), but a member
//! that fell behind cannot catch up on its own — the shared ledger answers
//! only for the group's position — so it rejoins by a rebuild, which folds
//! a private ledger and catches up to the group under the group's lock. A
//! poison event in the ledger's rules stops every member.

use crate::feed;
use crate::group::{sharing, GroupFailure, GroupRows, SharedLedger, SHARED_LEDGER};
use crate::projection::Projection;
use crate::runner::{lock_key, rehearse, schema_name, RunnerError, Step, KEYED_READS};
use crate::states::ProjectionState;
use deadpool_postgres::{Object, Transaction};
use payledger_events::Checkpoint;
use std::sync::Arc;

/// The ledger's generation and checkpoint, and the members at it.
pub(crate) struct GroupState {
    pub ledger_generation: i32,
    pub checkpoint: Checkpoint,
    pub ledger_stopped: bool,
    /// In lockstep: running at the ledger's checkpoint, with the generation
    /// each reads and writes.
    pub members: Vec<(Arc<dyn Projection>, i32)>,
}

pub(crate) fn group_lock() -> i64 {
    lock_key(SHARED_LEDGER)
}

/// `None` when the shared ledger is not installed.
pub(crate) async fn group_state(tx: &Transaction<'_>) -> Result<Option<GroupState>, RunnerError> {
    let mut names: Vec<&str> = sharing().iter().map(|p| p.name()).collect();
    names.push(SHARED_LEDGER);
    let rows = tx
        .query(
            "SELECT name, generation, checkpoint_tx, checkpoint_pos, status FROM projection_state WHERE name = ANY($1)",
            &[&names],
        )
        .await?;
    let state_of = |name: &str| {
        rows.iter().find(|r| r.get::<_, &str>(0) == name).map(|r| {
            (
                r.get::<_, i32>(1),
                Checkpoint {
                    transaction_id: r.get(2),
                    position: r.get(3),
                },
                r.get::<_, String>(4) == ProjectionState::Running.as_str(),
            )
        })
    };
    let Some((ledger_generation, checkpoint, ledger_running)) = state_of(SHARED_LEDGER) else {
        return Ok(None);
    };
    let members = sharing()
        .into_iter()
        .filter_map(|p| match state_of(p.name()) {
            Some((generation, at, true)) if at == checkpoint => Some((p, generation)),
            _ => None,
        })
        .collect();
    Ok(Some(GroupState {
        ledger_generation,
        checkpoint,
        ledger_stopped: !ledger_running,
        members,
    }))
}

/// Where a group's batch failed for good, and who stops.
pub(crate) struct GroupPoison {
    pub position: i64,
    pub event_type: String,
    pub reason: String,
    /// The members that stop; empty: the shared ledger (and so everyone).
    pub members: Vec<&'static str>,
}

/// A poison event met while a rebuild catches up: the rebuild stops there,
/// naming whom it concerns.
impl From<GroupPoison> for RunnerError {
    fn from(poison: GroupPoison) -> RunnerError {
        RunnerError::RebuildStopped {
            projection: poison
                .members
                .first()
                .copied()
                .unwrap_or(SHARED_LEDGER)
                .into(),
            position: poison.position,
            reason: poison.reason,
        }
    }
}

/// Applies `events` to the group (the ledger in `ledger_generation`, each
/// member in its generation) inside `tx`; the caller moves the checkpoints.
pub(crate) async fn apply_group_batch(
    tx: &Transaction<'_>,
    ledger_generation: i32,
    members: &[(Arc<dyn Projection>, i32)],
    events: &[payledger_events::RecordedEvent],
) -> Result<Result<(), GroupPoison>, RunnerError> {
    tx.batch_execute(&format!("SET LOCAL search_path = public; {KEYED_READS}"))
        .await?;
    let projections: Vec<Arc<dyn Projection>> = members.iter().map(|(p, _)| p.clone()).collect();
    let schemas: Vec<String> = members
        .iter()
        .map(|(p, g)| schema_name(p.name(), *g))
        .collect();
    let ledger_schema = schema_name(SHARED_LEDGER, ledger_generation);
    let mut decoded = Vec::with_capacity(events.len());
    for event in events {
        let for_ledger = crate::ledger::TYPES.contains(&event.event_type.as_str());
        if !for_ledger && !projections.iter().any(|p| p.handles(&event.event_type)) {
            continue;
        }
        match event.decode() {
            Ok(d) => decoded.push((event, d)),
            Err(e) => {
                // Only the members that read this type cannot go on; a
                // type the ledger applies stops it and so everyone.
                let stopping = if for_ledger {
                    vec![]
                } else {
                    projections
                        .iter()
                        .filter(|p| p.handles(&event.event_type))
                        .map(|p| p.name())
                        .collect()
                };
                return Ok(Err(GroupPoison {
                    position: event.position,
                    event_type: event.event_type.clone(),
                    reason: e.to_string(),
                    members: stopping,
                }));
            }
        }
    }
    let mut rehearsal = GroupRows::in_schemas(&projections, &ledger_schema, &schemas);
    crate::projection::ProjectionRows::rehearse(&mut rehearsal);
    let wanted = rehearse(
        &mut rehearsal,
        &decoded.iter().map(|(e, d)| (*e, d)).collect::<Vec<_>>(),
    )
    .await;
    let mut rows = GroupRows::in_schemas(&projections, &ledger_schema, &schemas);
    crate::projection::ProjectionRows::prefetch(&mut rows, tx, &wanted).await?;
    for (event, decoded) in &decoded {
        match rows.apply(Some(tx), event, decoded).await {
            Ok(()) => {}
            Err(GroupFailure {
                reason: crate::group::GroupReason::Database(e),
                ..
            }) if e.as_db_error().is_none() => return Err(e.into()),
            Err(failure) => {
                return Ok(Err(GroupPoison {
                    position: event.position,
                    event_type: event.event_type.clone(),
                    reason: failure.to_string(),
                    members: failure.member.into_iter().collect(),
                }))
            }
        }
    }
    if let Err(e) = crate::projection::ProjectionRows::flush(&mut rows, tx).await {
        if let (Some(last), Some(db)) = (events.last(), e.as_db_error()) {
            if events.len() == 1 {
                return Ok(Err(GroupPoison {
                    position: last.position,
                    event_type: last.event_type.clone(),
                    reason: format!("{} ({})", db.message(), db.code().code()),
                    // Which member's row it was is in the message.
                    members: projections.iter().map(|p| p.name()).collect(),
                }));
            }
            return Err(RunnerError::BatchRejected(e.to_string()));
        }
        return Err(e.into());
    }
    Ok(Ok(()))
}

/// Moves the ledger's checkpoint and each member's to `to`.
async fn move_checkpoints(
    tx: &Transaction<'_>,
    members: &[(Arc<dyn Projection>, i32)],
    to: Checkpoint,
) -> Result<(), RunnerError> {
    let mut names: Vec<&str> = members.iter().map(|(p, _)| p.name()).collect();
    names.push(SHARED_LEDGER);
    tx.execute(
        "UPDATE projection_state SET checkpoint_tx = $2, checkpoint_pos = $3, updated_at = now() WHERE name = ANY($1)",
        &[&names, &to.transaction_id, &to.position],
    )
    .await?;
    Ok(())
}

/// One batch of the group. `Stopped` when the shared ledger is stopped.
pub async fn step_group(client: &mut Object, batch: i64) -> Result<Step, RunnerError> {
    match step_group_once(client, batch).await {
        Err(RunnerError::BatchRejected(reason)) => {
            tracing::warn!(%reason, "group batch rejected; retrying one event at a time");
            step_group_once(client, 1).await
        }
        other => other,
    }
}

async fn step_group_once(client: &mut Object, batch: i64) -> Result<Step, RunnerError> {
    let tx = client.transaction().await?;
    let locked: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&group_lock()])
        .await?
        .get(0);
    if !locked {
        return Ok(Step::Busy);
    }
    let state = group_state(&tx)
        .await?
        .ok_or_else(|| RunnerError::NotInstalled(SHARED_LEDGER.into()))?;
    if state.ledger_stopped {
        return Ok(Step::Stopped);
    }
    if state.members.is_empty() {
        return Ok(Step::Idle);
    }
    let unread = crate::projection::unread_types(&[&SharedLedger]);
    let events = feed::read_after_without(&tx, state.checkpoint, batch, &unread).await?;
    let Some(last) = events.last().map(|e| e.checkpoint()) else {
        return Ok(Step::Idle);
    };
    // As for one projection (runner::step): rows and checkpoints are lost
    // together if PostgreSQL crashes before the flush, and redone.
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    match apply_group_batch(&tx, state.ledger_generation, &state.members, &events).await? {
        Ok(()) => {
            move_checkpoints(&tx, &state.members, last).await?;
            tx.commit().await?;
            Ok(Step::Applied(events.len()))
        }
        Err(poison) => {
            drop(tx);
            stop_for(client, &state, &poison).await?;
            Ok(Step::Stopped)
        }
    }
}

/// Records who a poison event stops: the members named, or the ledger and
/// every member with it.
async fn stop_for(
    client: &Object,
    state: &GroupState,
    poison: &GroupPoison,
) -> Result<(), RunnerError> {
    let (names, reason): (Vec<&str>, String) = if poison.members.is_empty() {
        let mut names: Vec<&str> = state.members.iter().map(|(p, _)| p.name()).collect();
        names.push(SHARED_LEDGER);
        (names, poison.reason.clone())
    } else {
        let mut names = poison.members.clone();
        // With no member left the group stands still: say so on the
        // ledger too, rather than show it running and ever further behind.
        if state.members.iter().all(|(p, _)| names.contains(&p.name())) {
            names.push(SHARED_LEDGER);
        }
        (names, poison.reason.clone())
    };
    tracing::error!(projections = ?names, position = poison.position, event_type = %poison.event_type, %reason, "poison event: stopped");
    client
        .execute(
            "UPDATE projection_state SET status = $5, last_error = $2, error_position = $3,
                 error_event_type = $4, updated_at = now() WHERE name = ANY($1)",
            &[
                &names,
                &reason,
                &poison.position,
                &poison.event_type,
                &ProjectionState::Stopped.as_str(),
            ],
        )
        .await?;
    Ok(())
}

/// Inside a caller's transaction that holds the group's lock: applies
/// every readable event to the group and moves its checkpoints. Returns
/// the group's checkpoint. A poison event aborts (the group's own step
/// stops whoever it concerns).
pub(crate) async fn advance_group(
    tx: &Transaction<'_>,
    batch: i64,
) -> Result<Checkpoint, RunnerError> {
    let unread = crate::projection::unread_types(&[&SharedLedger]);
    loop {
        let state = group_state(tx)
            .await?
            .ok_or_else(|| RunnerError::NotInstalled(SHARED_LEDGER.into()))?;
        if state.ledger_stopped {
            return Ok(state.checkpoint);
        }
        let events = feed::read_after_without(tx, state.checkpoint, batch, &unread).await?;
        let Some(last) = events.last().map(|e| e.checkpoint()) else {
            return Ok(state.checkpoint);
        };
        if let Err(poison) =
            apply_group_batch(tx, state.ledger_generation, &state.members, &events).await?
        {
            return Err(poison.into());
        }
        move_checkpoints(tx, &state.members, last).await?;
    }
}
