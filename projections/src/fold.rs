//! Folding events through every projection in memory, with no database —
//! the rebuild's mode of the rules. Fuzz targets and property tests use it
//! to run thousands of histories a second.

use crate::runner::caught;
use payledger_events::RecordedEvent;

/// Each table's name and its rows, printed, in key order.
pub type TableRows = Vec<(&'static str, Vec<String>)>;

/// Each projection's name and its tables' rows after folding `events` from
/// empty. `Err` names the projection, the event and why a rule failed (a
/// panic included): a rule must be total.
pub fn fold_in_memory(events: &[RecordedEvent]) -> Result<Vec<(&'static str, TableRows)>, String> {
    let mut out = vec![];
    for projection in crate::all() {
        let mut rows = projection.rows();
        rows.in_memory_only();
        for event in events {
            if !projection.handles(&event.event_type) {
                continue;
            }
            let where_ = || {
                format!(
                    "{} at position {} ({})",
                    projection.name(),
                    event.position,
                    event.event_type
                )
            };
            let decoded = event.decode().map_err(|e| format!("{}: {e}", where_()))?;
            // With no database nothing awaits: the rule finishes at once.
            use futures_util::FutureExt;
            let applied = caught(rows.apply(None, event, &decoded))
                .now_or_never()
                .ok_or_else(|| format!("{}: the rule waited with no database", where_()))?;
            applied
                .map_err(|panic| format!("{}: {panic}", where_()))?
                .map_err(|e| format!("{}: {e}", where_()))?;
        }
        out.push((projection.name(), rows.snapshot()));
    }
    Ok(out)
}

/// [`fold_in_memory`] with one ledger shared by every projection
/// (`crate::group`), each projection's tables without its (unused) ledger.
pub fn fold_shared_in_memory(
    events: &[RecordedEvent],
) -> Result<Vec<(&'static str, TableRows)>, String> {
    use futures_util::FutureExt;
    let mut group = crate::group::GroupRows::new(&crate::all());
    group.in_memory_only();
    for event in events {
        if !group.handles(&event.event_type) {
            continue;
        }
        let where_ = || format!("position {} ({})", event.position, event.event_type);
        let decoded = event.decode().map_err(|e| format!("{}: {e}", where_()))?;
        group
            .apply(None, event, &decoded)
            .now_or_never()
            .ok_or_else(|| format!("{}: the rule waited with no database", where_()))?
            .map_err(|e| format!("{}: {e}", where_()))?;
    }
    Ok(group.snapshots())
}

/// Each projection's tables but its private ledger: what a group of them
/// sharing one ledger must equal.
pub fn without_ledgers(folded: Vec<(&'static str, TableRows)>) -> Vec<(&'static str, TableRows)> {
    folded
        .into_iter()
        .map(|(name, mut tables)| {
            tables.retain(|(table, _)| *table != "ledger");
            (name, tables)
        })
        .collect()
}
