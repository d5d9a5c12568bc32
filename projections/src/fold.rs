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
