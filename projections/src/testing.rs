//! Given/when/then for the rules, with no database: fold events through
//! every projection in memory (the rebuild's mode) and read the rows.
//!
//! ```ignore
//! let rows = given(vec![checkout, charge]).when(refund).then();
//! assert_eq!(rows.one("subscriptions").field("status"), "refunded");
//! ```

use crate::fold::fold_in_memory;
use chrono::{DateTime, TimeZone, Utc};
use payledger_events::{EventData, RecordedEvent, StreamId};

/// A history being built: events in the order the log would hold them.
#[derive(Default, Clone)]
pub struct Scenario {
    events: Vec<RecordedEvent>,
}

/// Starts a scenario with these facts already in the log.
pub fn given(facts: impl IntoIterator<Item = (StreamId, EventData)>) -> Scenario {
    Scenario::default().when_all(facts)
}

impl Scenario {
    pub fn when(self, fact: (StreamId, EventData)) -> Self {
        self.when_all([fact])
    }

    pub fn when_all(mut self, facts: impl IntoIterator<Item = (StreamId, EventData)>) -> Self {
        for (stream, data) in facts {
            let position = self.events.len() as i64 + 1;
            let stream_version =
                self.events.iter().filter(|e| e.stream == stream).count() as i64 + 1;
            self.events.push(RecordedEvent {
                position,
                transaction_id: position,
                stream,
                stream_version,
                event_id: data.event_id,
                event_type: data.event_type,
                payload: data.payload,
                metadata: data.metadata,
                recorded_at: recorded_at(position),
            });
        }
        self
    }

    /// Folds the history; panics with the rule's own words if one fails
    /// (a rule must be total).
    pub fn then(&self) -> Folded {
        let folded = fold_in_memory(&self.events);
        if let Ok(alone) = &folded {
            // Every scenario also proves the shared ledger changes nothing.
            match crate::fold::fold_shared_in_memory(&self.events) {
                Ok(shared) => assert_eq!(
                    crate::fold::without_ledgers(alone.clone()),
                    shared,
                    "one ledger shared by every projection gives the rows private ledgers give"
                ),
                Err(e) => panic!("a rule failed with the ledger shared: {e}"),
            }
        }
        match folded {
            Ok(projections) => Folded {
                tables: projections
                    .into_iter()
                    .flat_map(|(_, tables)| tables)
                    .collect(),
            },
            Err(e) => panic!("a rule failed: {e}"),
        }
    }

    pub fn events(&self) -> &[RecordedEvent] {
        &self.events
    }
}

/// A fixed clock for the log: a minute per position from 2026-12-01 (after
/// every cut-over a rule has, such as the first dispute emails).
fn recorded_at(position: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
        + chrono::Duration::minutes(position)
}

/// Every table's rows after the fold.
pub struct Folded {
    tables: Vec<(&'static str, Vec<String>)>,
}

impl Folded {
    /// The rows of `table` (as `Debug` prints them), in key order.
    pub fn rows(&self, table: &str) -> Vec<Row<'_>> {
        let mut found = self.tables.iter().filter(|(t, _)| *t == table).peekable();
        if found.peek().is_none() {
            let known: Vec<_> = self.tables.iter().map(|(t, _)| *t).collect();
            panic!("no table {table:?}; there are {known:?}");
        }
        found
            .flat_map(|(_, rows)| rows.iter().map(|r| Row(r.as_str())))
            .collect()
    }

    /// The only row of `table`; panics showing them all when not one.
    pub fn one(&self, table: &str) -> Row<'_> {
        match self.rows(table).as_slice() {
            [one] => *one,
            rows => panic!(
                "expected one row in {table}, found {}: {rows:#?}",
                rows.len()
            ),
        }
    }

    /// The rows of `table` whose `field` is `value`.
    pub fn rows_where(&self, table: &str, field: &str, value: &str) -> Vec<Row<'_>> {
        self.rows(table)
            .into_iter()
            .filter(|r| r.field(field) == value)
            .collect()
    }
}

/// One row as `Debug` printed it; fields read by name.
#[derive(Clone, Copy, PartialEq)]
pub struct Row<'a>(pub &'a str);

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Row<'_> {
    /// The field's value without quotes or `Some(..)`; `""` for `None`.
    /// Panics when the row has no such field, naming the row.
    pub fn field(&self, name: &str) -> String {
        let key = format!("{name}: ");
        let start = [format!(" {key}"), format!("{{ {key}")]
            .iter()
            .find_map(|k| self.0.find(k.as_str()).map(|i| i + k.len()))
            .unwrap_or_else(|| panic!("no field {name:?} in {}", self.0));
        let rest = &self.0[start..];
        let value = value_prefix(rest);
        let value = value
            .strip_prefix("Some(")
            .and_then(|v| v.strip_suffix(')'))
            .unwrap_or(value);
        match value {
            "None" => String::new(),
            v if v.starts_with('"') => {
                serde_json::from_str::<String>(v).unwrap_or_else(|_| v.trim_matches('"').into())
            }
            v => v.to_string(),
        }
    }
}

/// The text of one `Debug` value at the start of `rest`: up to the comma
/// or brace that closes it, skipping over strings and nested brackets.
fn value_prefix(rest: &str) -> &str {
    let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => return rest[..i].trim_end(),
            _ => {}
        }
    }
    rest.trim_end()
}
