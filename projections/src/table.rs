//! The rows a projection reads and writes, held in memory. The payment
//! rules are plain Rust over these rows; the table decides where they come
//! from and where they go:
//!
//! * live (`Db` is a transaction): the rows a rehearsal of the batch looked
//!   up are read ahead (`prefetch`, see [`Wanted`]), any other row the first
//!   time the batch needs it, and every changed row is written back before
//!   the checkpoint moves in the same transaction;
//! * rebuild and replay (`Db` is `None`): the tables start empty, so the
//!   whole state lives in memory and is written once with binary `COPY`.
//!
//! One set of rules, two ways of storing: live and rebuilt read models are
//! the same function of the log (guarantee 5), which the rebuild tests check.

use deadpool_postgres::Transaction;
use futures_util::pin_mut;
use std::collections::BTreeSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Error;

/// The row maps are hashed on every lookup of every rule: SipHash was ~7%
/// of `bench projections --rebuild-all-only`'s samples (`perf`, 188,577
/// events). foldhash is seeded per process, as the standard hasher is, so
/// keys from outside (emails, processor ids) cannot be chosen to collide.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;
type HashSet<K> = std::collections::HashSet<K, foldhash::quality::RandomState>;

/// Where rows not yet in memory are: a live transaction, or nowhere (the
/// tables are being built from empty).
pub type Db<'a> = Option<&'a Transaction<'a>>;

pub type Values<'a> = Vec<&'a (dyn ToSql + Sync)>;

/// Bytes a column's value holds outside the row itself (a string's text):
/// what a rebuild counts against its memory budget.
pub trait HeapBytes {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl HeapBytes for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl HeapBytes for Option<String> {
    fn heap_bytes(&self) -> usize {
        self.as_ref().map_or(0, String::capacity)
    }
}

impl HeapBytes for i64 {}
impl HeapBytes for Option<i64> {}
impl HeapBytes for i32 {}
impl HeapBytes for bool {}
impl HeapBytes for chrono::DateTime<chrono::Utc> {}
impl HeapBytes for Option<chrono::DateTime<chrono::Utc>> {}

/// What a hash map entry and a key kept in a set cost beyond their text.
const ENTRY_OVERHEAD: usize = 64;

/// A row type of one table. `COLUMNS` is in the order of `values`.
pub trait Record: Clone + std::fmt::Debug + Send + Sync + 'static {
    const TABLE: &'static str;
    const COLUMNS: &'static [(&'static str, Type)];
    const KEY: &'static [&'static str];
    /// Columns the rules look rows up by, besides the key.
    const INDEXES: &'static [&'static str] = &[];
    fn key(&self) -> String;
    /// The value of `R::INDEXES[index]`.
    fn index_ref(&self, _index: usize) -> Option<&str> {
        None
    }
    fn values(&self) -> Values<'_>;
    fn from_row(row: &tokio_postgres::Row) -> Result<Self, Error>;
    /// The text the row's columns hold.
    fn heap_bytes(&self) -> usize;
}

pub struct Table<R: Record> {
    /// `None`: known not to exist.
    rows: HashMap<String, Option<R>>,
    changed: BTreeSet<String>,
    /// False while building from empty: every row is written, so which
    /// changed need not be remembered.
    track_changes: bool,
    /// Per index: value → keys of the rows in memory with that value.
    indexes: Vec<HashMap<String, BTreeSet<String>>>,
    /// About what `rows`, `changed` and `indexes` hold, in bytes.
    bytes: usize,
    /// Keys read or written since the last `evict_cold`: what a rebuild
    /// in a budget keeps when it writes its rows and frees memory.
    recent: HashSet<String>,
    /// Per index: the values whose rows are all in memory (read from the
    /// tables since, and none forgotten): `find` need not ask again within
    /// a batch, nor a rebuild past its budget until it forgets them.
    complete: Vec<HashSet<String>>,
    /// A rehearsal (see [`Wanted`]): remember what is looked up instead of
    /// reading it.
    rehearsing: bool,
    wanted: TableWanted,
    /// The shared ledger (see [`crate::group`]): the rows the event being
    /// applied changed, as they were before it (`None` inside: absent;
    /// outer `None`: not in memory then). Reads in the before view see
    /// these, so a projection that looks a row up before its own `track`
    /// sees what its private copy would have held at that moment.
    before: HashMap<String, Option<Option<R>>>,
    recording: bool,
    before_view: bool,
    /// The schema the table is in, when its statements name it (a group's
    /// members and their ledger live in several schemas of one
    /// transaction); else the `search_path`'s.
    schema: Option<std::sync::Arc<str>>,
}

/// What a rehearsal of a batch looked up, per table: the keys of `get` and
/// the index values of `find`. A live batch is first applied to empty rows
/// with no database (its rows are thrown away); what that asked for is the
/// batch's first-hand lookups, read in one statement per table and index
/// before the batch is applied for real. Lookups that depend on a row read
/// are not in it; those are read one by one as before. A query per lookup
/// was most of the statements a burst cost the database.
pub type Wanted = std::collections::HashMap<String, TableWanted>;

/// Adds what `from` wanted to `into`.
pub fn merge_wanted(into: &mut Wanted, from: Wanted) {
    for (table, mine) in from {
        into.entry(table).or_default().absorb(mine);
    }
}

impl TableWanted {
    fn absorb(&mut self, mine: TableWanted) {
        self.keys.extend(mine.keys);
        self.finds
            .resize_with(mine.finds.len().max(self.finds.len()), BTreeSet::new);
        for (i, values) in mine.finds.into_iter().enumerate() {
            self.finds[i].extend(values);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct TableWanted {
    keys: BTreeSet<String>,
    /// Per index: the values looked up.
    finds: Vec<BTreeSet<String>>,
}

impl<R: Record> Default for Table<R> {
    fn default() -> Self {
        Table {
            rows: HashMap::default(),
            changed: BTreeSet::new(),
            track_changes: true,
            indexes: vec![HashMap::default(); R::INDEXES.len()],
            bytes: 0,
            recent: HashSet::default(),
            complete: vec![HashSet::default(); R::INDEXES.len()],
            rehearsing: false,
            wanted: TableWanted::default(),
            before: HashMap::default(),
            recording: false,
            before_view: false,
            schema: None,
        }
    }
}

/// About what one row in memory costs: the row, its key (in the map and
/// in the changed set) and its index entries.
fn entry_bytes<R: Record>(key: &str, row: &Option<R>) -> usize {
    let indexed = row.as_ref().map_or(0, |r| {
        (0..R::INDEXES.len())
            .filter_map(|i| r.index_ref(i))
            .map(|v| v.len() + key.len() + 2 * ENTRY_OVERHEAD)
            .sum()
    });
    std::mem::size_of::<Option<R>>()
        + 2 * (key.len() + ENTRY_OVERHEAD)
        + row.as_ref().map_or(0, Record::heap_bytes)
        + indexed
}

fn column_list<R: Record>() -> String {
    R::COLUMNS
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT` of every column by one column: `= $1`, or `= ANY($1)` for
/// many values at once (an index's rows, a prefetch). Index columns are
/// text (`IndexValue`).
fn select_by<R: Record>(table: &str, column: &str, many: bool) -> String {
    let condition = if many { "ANY($1::text[])" } else { "$1" };
    format!(
        "SELECT {} FROM {table} WHERE {column} = {condition}",
        column_list::<R>(),
    )
}

/// Rows per upsert statement, largest first: a batch's changed rows are
/// written in statements of these sizes, so a burst writes up to 64 rows a
/// statement (a statement per row was most of what a projection cost the
/// database), and each table has three prepared statements, not one per
/// number of rows.
const UPSERT_CHUNKS: [usize; 3] = [64, 8, 1];

/// `INSERT … VALUES (…), (…) ON CONFLICT (key) DO UPDATE` for `rows` rows.
fn upsert_sql<R: Record>(table: &str, rows: usize) -> String {
    let n = R::COLUMNS.len();
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = R::COLUMNS
                .iter()
                .enumerate()
                .map(|(c, (_, ty))| format!("${}::{}", r * n + c + 1, ty.name()))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    let updates: Vec<String> = R::COLUMNS
        .iter()
        .filter(|(c, _)| !R::KEY.contains(c))
        .map(|(c, _)| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "INSERT INTO {table} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}",
        column_list::<R>(),
        tuples.join(", "),
        R::KEY.join(", "),
        updates.join(", ")
    )
}

impl<R: Record> Table<R> {
    /// The row with this key. Live lookups go by the first key column, so
    /// only tables with a one-column key are read this way (the timeline's
    /// two-column rows are only ever written).
    pub async fn get(&mut self, db: Db<'_>, key: &str) -> Result<Option<R>, Error> {
        if self.before_view {
            if let Some(before) = self.before.get(key) {
                return match before {
                    Some(known) => Ok(known.clone()),
                    // Written without being read first: what it was is
                    // the database's (nothing earlier in the batch wrote it).
                    None => match db {
                        Some(tx) => {
                            let statement = tx
                                .prepare_cached(&select_by::<R>(&self.name(), R::KEY[0], false))
                                .await?;
                            match tx.query_opt(&statement, &[&key]).await? {
                                Some(row) => Ok(Some(R::from_row(&row)?)),
                                None => Ok(None),
                            }
                        }
                        None => Ok(None),
                    },
                };
            }
        }
        if let Some(known) = self.rows.get(key) {
            let known = known.clone();
            self.touch(key);
            return Ok(known);
        }
        let Some(tx) = db else {
            if self.rehearsing {
                self.wanted.keys.insert(key.to_string());
            }
            return Ok(None);
        };
        let statement = tx
            .prepare_cached(&select_by::<R>(&self.name(), R::KEY[0], false))
            .await?;
        let found = match tx.query_opt(&statement, &[&key]).await? {
            Some(row) => Some(R::from_row(&row)?),
            None => None,
        };
        self.remember(key.to_string(), found.clone());
        Ok(found)
    }

    /// Every row whose `R::INDEXES[index]` column equals `value`, in key
    /// order (so both ways of storing see the same order).
    pub async fn find(&mut self, db: Db<'_>, index: usize, value: &str) -> Result<Vec<R>, Error> {
        if self.rehearsing {
            self.wanted
                .finds
                .resize_with(R::INDEXES.len(), BTreeSet::new);
            self.wanted.finds[index].insert(value.to_string());
        }
        if let Some(tx) = db.filter(|_| !self.complete[index].contains(value)) {
            self.read_index(tx, index, &[&value.to_string()]).await?;
        }
        let Some(keys) = self.indexes[index].get(value) else {
            return Ok(vec![]);
        };
        let keys: Vec<String> = keys.iter().cloned().collect();
        let found = keys
            .iter()
            .filter_map(|k| self.rows.get(k).cloned().flatten())
            .collect();
        for key in &keys {
            self.touch(key);
        }
        Ok(self.as_before(index, value, found))
    }

    /// `found` (the rows with `value` now) as the before view sees them.
    /// A row written without being read first counts as absent before: only
    /// the ledger's own rules `find`, and they run in the current view.
    fn as_before(&self, index: usize, value: &str, found: Vec<R>) -> Vec<R> {
        if !self.before_view || self.before.is_empty() {
            return found;
        }
        let mut rows: std::collections::BTreeMap<String, R> = found
            .into_iter()
            .map(|r| (r.key(), r))
            .filter(|(k, _)| !self.before.contains_key(k))
            .collect();
        for (key, before) in &self.before {
            if let Some(Some(row)) = before {
                if row.index_ref(index) == Some(value) {
                    rows.insert(key.clone(), row.clone());
                }
            }
        }
        rows.into_values().collect()
    }

    /// From now on, remember what each write replaces (the shared ledger
    /// applying an event); forgets what the previous event replaced.
    pub fn record_before(&mut self) {
        self.before.clear();
        self.recording = true;
        self.before_view = false;
    }

    /// Stop remembering what writes replace.
    pub fn stop_recording(&mut self) {
        self.recording = false;
    }

    /// Reads see the rows as they were before the event (`true`) or now.
    pub fn view_before(&mut self, before: bool) {
        self.before_view = before;
    }

    /// Every row in memory, `Debug`-printed, in key order: for comparing two
    /// folds of the same events without a database.
    pub fn snapshot(&self) -> Vec<String> {
        let mut rows: Vec<(&String, &R)> = self
            .rows
            .iter()
            .filter_map(|(k, r)| r.as_ref().map(|r| (k, r)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        rows.into_iter().map(|(_, r)| format!("{r:?}")).collect()
    }

    /// The table as its statements name it.
    pub fn name(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", R::TABLE),
            None => R::TABLE.to_string(),
        }
    }

    /// From now on the statements name the table in `schema`.
    pub fn set_schema(&mut self, schema: &std::sync::Arc<str>) {
        self.schema = Some(schema.clone());
    }

    pub fn put(&mut self, row: R) {
        let key = row.key();
        if self.recording && !self.before.contains_key(&key) {
            let was = self.rows.get(&key).cloned();
            self.before.insert(key.clone(), was);
        }
        if self.track_changes {
            self.changed.insert(key.clone());
        }
        self.remember(key, Some(row));
    }

    /// For a build from empty that ends in `copy_into`.
    pub fn in_memory_only(&mut self) {
        self.track_changes = false;
        self.changed.clear();
    }

    /// Remember which rows change again (a rebuild that wrote what it had
    /// and goes on against its tables).
    pub fn track_changes(&mut self) {
        self.track_changes = true;
    }

    /// About how many bytes the rows in memory take.
    pub fn resident_bytes(&self) -> usize {
        self.bytes
    }

    /// Forgets every row in memory, giving the memory back; they are read
    /// again from the tables when needed. Only after they were written.
    pub fn evict(&mut self) {
        debug_assert!(self.changed.is_empty(), "evicting unwritten rows");
        self.rows = HashMap::default();
        self.changed = BTreeSet::new();
        self.indexes = vec![HashMap::default(); R::INDEXES.len()];
        self.bytes = 0;
        self.recent = HashSet::default();
        self.complete = vec![HashSet::default(); R::INDEXES.len()];
    }

    /// Forgets the rows not read or written since the last call (written
    /// already): a history touches a customer's rows in a short stretch of
    /// the log, so what was used lately is what will be used next.
    pub fn evict_cold(&mut self) {
        debug_assert!(self.changed.is_empty(), "evicting unwritten rows");
        let recent = std::mem::take(&mut self.recent);
        let cold: Vec<String> = self
            .rows
            .keys()
            .filter(|k| !recent.contains(*k))
            .cloned()
            .collect();
        for key in cold {
            self.forget(&key);
        }
        self.bytes = self
            .bytes
            .saturating_sub(recent.iter().map(|k| k.len() + ENTRY_OVERHEAD).sum());
    }

    fn touch(&mut self, key: &str) {
        // Building from empty in memory there is nothing to keep apart:
        // the first write of a rebuild in a budget frees everything.
        if self.track_changes && !self.recent.contains(key) {
            self.bytes += key.len() + ENTRY_OVERHEAD;
            self.recent.insert(key.to_string());
        }
    }

    fn forget(&mut self, key: &str) {
        let Some(old) = self.rows.remove(key) else {
            return;
        };
        self.bytes = self.bytes.saturating_sub(entry_bytes(key, &old));
        if let Some(old) = old {
            for (i, index) in self.indexes.iter_mut().enumerate() {
                if let Some(v) = old.index_ref(i) {
                    // A value missing one of its rows must be asked again.
                    if self.complete[i].remove(v) {
                        self.bytes = self.bytes.saturating_sub(v.len() + ENTRY_OVERHEAD);
                    }
                    if let Some(keys) = index.get_mut(v) {
                        keys.remove(key);
                        if keys.is_empty() {
                            index.remove(v);
                        }
                    }
                }
            }
        }
    }

    fn remember(&mut self, key: String, row: Option<R>) {
        self.touch(&key);
        let old = self.rows.get(&key);
        if let Some(old) = old {
            self.bytes = self.bytes.saturating_sub(entry_bytes(&key, old));
        }
        self.bytes += entry_bytes(&key, &row);
        let old = old.and_then(Option::as_ref);
        for (i, index) in self.indexes.iter_mut().enumerate() {
            let before = old.and_then(|o| o.index_ref(i));
            let after = row.as_ref().and_then(|r| r.index_ref(i));
            // Most writes change no indexed column: the sets stay as they are.
            if before == after {
                continue;
            }
            if let Some(keys) = before.and_then(|v| index.get_mut(v)) {
                keys.remove(&key);
            }
            if let Some(v) = after {
                match index.get_mut(v) {
                    Some(keys) => {
                        keys.insert(key.clone());
                    }
                    None => {
                        index.insert(v.to_owned(), BTreeSet::from([key.clone()]));
                    }
                }
            }
        }
        self.rows.insert(key, row);
    }

    /// Writes the changed rows (live): one upsert each, sent without
    /// waiting for the previous answer.
    pub async fn flush(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        if self.changed.is_empty() {
            return Ok(());
        }
        let rows: Vec<&R> = self
            .changed
            .iter()
            .filter_map(|k| self.rows.get(k).and_then(Option::as_ref))
            .collect();
        let name = self.name();
        let mut statements = vec![];
        let mut rest = rows.as_slice();
        for size in UPSERT_CHUNKS {
            if rest.len() < size {
                continue;
            }
            let statement = tx.prepare_cached(&upsert_sql::<R>(&name, size)).await?;
            while rest.len() >= size {
                let (chunk, after) = rest.split_at(size);
                statements.push((statement.clone(), chunk));
                rest = after;
            }
        }
        let writes = statements.iter().map(|(statement, chunk)| {
            let values: Values<'_> = chunk.iter().flat_map(|row| row.values()).collect();
            async move { tx.execute(statement, &values).await }
        });
        futures_util::future::try_join_all(writes).await?;
        self.changed.clear();
        Ok(())
    }

    /// Writes every row into the (empty) table with binary `COPY`.
    pub async fn copy_into(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.name(),
            column_list::<R>()
        );
        let sink = tx.copy_in(&sql).await?;
        let types: Vec<Type> = R::COLUMNS.iter().map(|(_, t)| t.clone()).collect();
        let writer = BinaryCopyInWriter::new(sink, &types);
        pin_mut!(writer);
        for row in self.rows.values().flatten() {
            writer.as_mut().write(&row.values()).await?;
        }
        writer.finish().await?;
        self.changed.clear();
        Ok(())
    }
}

/// A column rows can be read by many at once: `= ANY($1::text[])`.
fn is_text<R: Record>(column: &str) -> bool {
    R::COLUMNS
        .iter()
        .any(|(c, t)| *c == column && *t == Type::TEXT)
}

impl<R: Record> Table<R> {
    /// Reads the rows whose `column` is one of `values` into memory: the
    /// database's unless this batch already holds a newer one.
    async fn read_many(
        &mut self,
        tx: &Transaction<'_>,
        column: &str,
        values: &[&String],
    ) -> Result<(), Error> {
        let statement = tx
            .prepare_cached(&select_by::<R>(&self.name(), column, true))
            .await?;
        for row in tx.query(&statement, &[&values]).await? {
            let row = R::from_row(&row)?;
            let key = row.key();
            if !self.rows.contains_key(&key) {
                self.remember(key, Some(row));
            }
        }
        Ok(())
    }

    /// Reads every row with one of `values` in the index into memory; from
    /// then on the index holds all of each value's rows.
    async fn read_index(
        &mut self,
        tx: &Transaction<'_>,
        index: usize,
        values: &[&String],
    ) -> Result<(), Error> {
        self.read_many(tx, R::INDEXES[index], values).await?;
        for value in values {
            self.bytes += value.len() + ENTRY_OVERHEAD;
            self.complete[index].insert((*value).clone());
        }
        Ok(())
    }

    /// Reads in one statement per key and index what a rehearsal wanted
    /// and is not in memory yet; keys not found are remembered as absent.
    pub async fn prefetch(&mut self, tx: &Transaction<'_>, wanted: &Wanted) -> Result<(), Error> {
        let Some(wanted) = wanted.get(&self.name()) else {
            return Ok(());
        };
        let keys: Vec<&String> = wanted
            .keys
            .iter()
            .filter(|k| !self.rows.contains_key(*k))
            .collect();
        if !keys.is_empty() && R::KEY.len() == 1 && is_text::<R>(R::KEY[0]) {
            self.read_many(tx, R::KEY[0], &keys).await?;
            for key in keys {
                if !self.rows.contains_key(key) {
                    self.remember(key.clone(), None);
                }
            }
        }
        for (index, values) in wanted.finds.iter().enumerate() {
            let values: Vec<&String> = values
                .iter()
                .filter(|v| !self.complete[index].contains(*v))
                .collect();
            if !values.is_empty() {
                self.read_index(tx, index, &values).await?;
            }
        }
        Ok(())
    }

    /// From now on, look nothing up: remember what was wanted.
    pub fn rehearse(&mut self) {
        self.rehearsing = true;
        self.in_memory_only();
    }

    /// What the rehearsal wanted, added to `into`.
    pub fn wanted_into(&mut self, into: &mut Wanted) {
        let mine = std::mem::take(&mut self.wanted);
        into.entry(self.name()).or_default().absorb(mine);
    }
}

impl<R: Record> Table<R> {
    /// Every row as PostgreSQL's `row_to_json` prints it, without creating
    /// a table: the values go as typed parameters of one prepared SELECT.
    /// For replays by a role that may not create temporary tables (the
    /// auditor). Unsorted.
    pub async fn rows_as_json(&self, tx: &Transaction<'_>) -> Result<Vec<String>, Error> {
        let select: Vec<String> = R::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (c, t))| format!("${}::{} AS {c}", i + 1, t.name()))
            .collect();
        let sql = format!(
            "SELECT row_to_json(t)::text FROM (SELECT {}) t",
            select.join(", ")
        );
        let statement = tx.prepare(&sql).await?;
        let reads = self.rows.values().flatten().map(|row| {
            let statement = &statement;
            async move { tx.query_one(statement, &row.values()).await }
        });
        Ok(futures_util::future::try_join_all(reads)
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect())
    }
}

/// A part of a projection's rows that may hold the table a replay asks for.
pub trait TableJson {
    fn json_of<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        table: &'a str,
    ) -> crate::projection::JsonFuture<'a>;
}

impl<R: Record> TableJson for Table<R> {
    fn json_of<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        table: &'a str,
    ) -> crate::projection::JsonFuture<'a> {
        Box::pin(async move {
            if table != R::TABLE {
                return Ok(None);
            }
            self.rows_as_json(tx).await.map(Some)
        })
    }
}

/// A value rows are found by: absent values are not indexed.
pub trait IndexValue {
    fn index_ref(&self) -> Option<&str>;
}

impl IndexValue for String {
    fn index_ref(&self) -> Option<&str> {
        Some(self)
    }
}

impl IndexValue for Option<String> {
    fn index_ref(&self) -> Option<&str> {
        self.as_deref()
    }
}

/// Declares a row type: its table, key, indexes and columns with their
/// PostgreSQL types, in the order of the table's `CREATE TABLE`.
#[macro_export]
macro_rules! record {
    (
        $(#[$meta:meta])*
        $name:ident in $table:literal, key($($key:ident),+), indexes($($index:ident),*) {
            $($field:ident: $ty:ty = $pg:ident),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $(pub $field: $ty),+
        }

        impl $crate::table::Record for $name {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [(&'static str, tokio_postgres::types::Type)] =
                &[$((stringify!($field), tokio_postgres::types::Type::$pg)),+];
            const KEY: &'static [&'static str] = &[$(stringify!($key)),+];
            const INDEXES: &'static [&'static str] = &[$(stringify!($index)),*];
            fn key(&self) -> String {
                [$(self.$key.to_string()),+].join("\u{1f}")
            }
            #[allow(unused_variables)]
            fn index_ref(&self, index: usize) -> Option<&str> {
                let values: &[Option<&str>] =
                    &[$($crate::table::IndexValue::index_ref(&self.$index)),*];
                values.get(index).copied().flatten()
            }
            fn values(&self) -> $crate::table::Values<'_> {
                vec![$(&self.$field),+]
            }
            fn from_row(row: &tokio_postgres::Row) -> Result<Self, tokio_postgres::Error> {
                Ok($name {
                    $($field: row.try_get(stringify!($field))?),+
                })
            }
            fn heap_bytes(&self) -> usize {
                0 $(+ $crate::table::HeapBytes::heap_bytes(&self.$field))+
            }
        }
    };
}

/// Implements `ProjectionRows` for a struct of tables (and a `Ledger`)
/// with an inherent `async fn apply_event(&mut self, db, event, decoded)`.
#[macro_export]
macro_rules! projection_rows {
    // A projection whose payment rules run on a ledger a group may share.
    ($rows:ty { ledger $(, $table:ident)* }) => {
        $crate::projection_rows!(@impl $rows { ledger $(, $table)* } {
            fn ledger_slot(&mut self) -> Option<&mut $crate::ledger::Ledger> {
                Some(&mut self.ledger)
            }
        });
    };
    ($rows:ty { $($table:ident),+ }) => {
        $crate::projection_rows!(@impl $rows { $($table),+ } {});
    };
    (@impl $rows:ty { $($table:ident),+ } { $($extra:tt)* }) => {
        impl $crate::projection::ProjectionRows for $rows {
            $($extra)*
            fn apply<'a>(
                &'a mut self,
                db: $crate::table::Db<'a>,
                event: &'a payledger_events::RecordedEvent,
                decoded: &'a payledger_events::DomainEvent,
            ) -> $crate::projection::ApplyFuture<'a> {
                Box::pin(self.apply_event(db, event, decoded))
            }
            fn flush<'a>(
                &'a mut self,
                tx: &'a deadpool_postgres::Transaction<'a>,
            ) -> $crate::projection::ApplyFuture<'a> {
                Box::pin(async move {
                    let writes: Vec<$crate::projection::ApplyFuture<'_>> =
                        vec![$(Box::pin(self.$table.flush(tx))),+];
                    futures_util::future::try_join_all(writes).await?;
                    Ok(())
                })
            }
            fn copy_into<'a>(
                &'a mut self,
                tx: &'a deadpool_postgres::Transaction<'a>,
            ) -> $crate::projection::ApplyFuture<'a> {
                Box::pin(async move {
                    $(self.$table.copy_into(tx).await?;)+
                    Ok(())
                })
            }
            fn into_parts(
                self: Box<Self>,
            ) -> Vec<Box<dyn $crate::projection::ProjectionRows>> {
                vec![self]
            }
            fn in_memory_only(&mut self) {
                $(self.$table.in_memory_only();)+
            }
            fn rehearse(&mut self) {
                $(self.$table.rehearse();)+
            }
            fn wanted(&mut self) -> $crate::table::Wanted {
                let mut wanted = $crate::table::Wanted::new();
                $(self.$table.wanted_into(&mut wanted);)+
                wanted
            }
            fn prefetch<'a>(
                &'a mut self,
                tx: &'a deadpool_postgres::Transaction<'a>,
                wanted: &'a $crate::table::Wanted,
            ) -> $crate::projection::ApplyFuture<'a> {
                // Independent reads, sent at once: one round trip's wait.
                Box::pin(async move {
                    let reads: Vec<$crate::projection::ApplyFuture<'_>> =
                        vec![$(Box::pin(self.$table.prefetch(tx, wanted))),+];
                    futures_util::future::try_join_all(reads).await?;
                    Ok(())
                })
            }
            fn track_changes(&mut self) {
                $(self.$table.track_changes();)+
            }
            fn set_schema(&mut self, schema: &std::sync::Arc<str>) {
                $(self.$table.set_schema(schema);)+
            }
            fn resident_bytes(&self) -> usize {
                0 $(+ self.$table.resident_bytes())+
            }
            fn evict(&mut self) {
                $(self.$table.evict();)+
            }
            fn evict_cold(&mut self) {
                $(self.$table.evict_cold();)+
            }
            fn snapshot(&self) -> Vec<(&'static str, Vec<String>)> {
                vec![$((stringify!($table), self.$table.snapshot())),+]
            }
            fn table_json<'a>(
                &'a self,
                tx: &'a deadpool_postgres::Transaction<'a>,
                table: &'a str,
            ) -> $crate::projection::JsonFuture<'a> {
                Box::pin(async move {
                    $(
                        if let Some(rows) =
                            $crate::table::TableJson::json_of(&self.$table, tx, table).await?
                        {
                            return Ok(Some(rows));
                        }
                    )+
                    Ok(None)
                })
            }
        }
    };
}
