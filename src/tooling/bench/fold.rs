//! `payledger bench fold`: the rules alone, with no database — each
//! projection's in-memory fold (a rebuild's mode) over the same events,
//! beside decoding them and beside the shared payment rules (`Ledger`, and
//! the renewal rules over it) that every one of five projections runs on
//! its own copy. What one shared ledger would save is the ledger's share.

use super::fresh_bench_database;
use payledger::clock::{Clock, SystemClock};
use payledger::store::PgEventStore;
use payledger_events::{DomainEvent, RecordedEvent};
use payledger_projections::{ledger::Ledger, renewals::Renewals};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct FoldRow {
    pub name: String,
    /// Events of the types it handles.
    pub events: usize,
    pub seconds: f64,
    pub events_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct FoldReport {
    pub events: usize,
    /// Decoding every event once (what every fold starts from).
    pub decode_seconds: f64,
    pub rows: Vec<FoldRow>,
    /// The payment and renewal rules alone, once over the log.
    pub ledger_seconds: f64,
    /// Projections that run their own copy of those rules.
    pub ledger_copies: usize,
    /// `ledger_copies × ledger_seconds / Σ projections' seconds`.
    pub ledger_share: f64,
    /// The five folded as one group over one shared ledger
    /// (`payledger_projections::group`), and `Σ alone / group`.
    pub group_seconds: f64,
    pub group_speedup: f64,
    /// The group's rows equal the five folded alone (private ledgers).
    pub group_equal: bool,
}

/// Runs `rule` over every decoded event with no database; a rule that
/// awaits with none would be a defect, reported as such.
fn fold_with(
    events: &[(RecordedEvent, DomainEvent)],
    mut rule: impl FnMut(&RecordedEvent, &DomainEvent) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    for (event, decoded) in events {
        rule(event, decoded)?;
    }
    Ok(started.elapsed().as_secs_f64())
}

fn now_or_never<T>(
    f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> anyhow::Result<T> {
    use futures_util::FutureExt;
    f.now_or_never()
        .ok_or_else(|| anyhow::anyhow!("a rule waited with no database"))?
        .map_err(Into::into)
}

pub async fn run_fold_bench(
    database_url: &str,
    customers: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<FoldReport> {
    let db = fresh_bench_database(database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = PgEventStore::new(db.pool.clone(), clock);
    super::projections::generate_history(&store, customers, progress).await?;
    progress.finish_and_clear();
    let mut client = db.pool.get().await?;
    let mut events = vec![];
    super::projections::read_whole_log(&mut client, |page| events.extend(page)).await?;
    let started = Instant::now();
    let decoded: Vec<(RecordedEvent, DomainEvent)> = events
        .into_iter()
        .filter_map(|e| e.decode().ok().map(|d| (e, d)))
        .collect();
    let decode_seconds = started.elapsed().as_secs_f64();

    let mut rows = vec![];
    let mut ledger_copies = 0;
    let mut alone = vec![];
    for projection in payledger_projections::all() {
        let handled: Vec<(RecordedEvent, DomainEvent)> = decoded
            .iter()
            .filter(|(e, _)| projection.handles(&e.event_type))
            .cloned()
            .collect();
        let mut state = projection.rows();
        state.in_memory_only();
        let seconds = fold_with(&handled, |e, d| now_or_never(state.apply(None, e, d)))?;
        alone.push((projection.name(), state.snapshot()));
        if handled
            .iter()
            .any(|(e, _)| e.event_type == "ChargeSucceeded")
        {
            ledger_copies += 1;
        }
        rows.push(FoldRow {
            name: projection.name().into(),
            events: handled.len(),
            seconds,
            events_per_s: handled.len() as f64 / seconds.max(1e-9),
        });
    }
    let mut ledger = Ledger::default();
    let mut renewals = Renewals::default();
    ledger.in_memory_only();
    renewals.in_memory_only();
    let ledger_seconds = fold_with(&decoded, |e, d| {
        now_or_never(renewals.track(None, &mut ledger, d))?;
        now_or_never(ledger.track(None, e, d)).map(|_| ())
    })?;
    rows.push(FoldRow {
        name: "ledger + renewal rules".into(),
        events: decoded.len(),
        seconds: ledger_seconds,
        events_per_s: decoded.len() as f64 / ledger_seconds.max(1e-9),
    });
    let projections_seconds: f64 = rows[..rows.len() - 1].iter().map(|r| r.seconds).sum();
    let mut group = payledger_projections::group::GroupRows::new(&payledger_projections::all());
    group.in_memory_only();
    let group_seconds = fold_with(&decoded, |e, d| {
        use futures_util::FutureExt;
        group
            .apply(None, e, d)
            .now_or_never()
            .ok_or_else(|| anyhow::anyhow!("a rule waited with no database"))?
            .map_err(|f| anyhow::anyhow!("{f}"))
    })?;
    let group_equal = payledger_projections::fold::without_ledgers(alone) == group.snapshots();
    rows.push(FoldRow {
        name: "five, one shared ledger".into(),
        events: decoded.len(),
        seconds: group_seconds,
        events_per_s: decoded.len() as f64 / group_seconds.max(1e-9),
    });
    Ok(FoldReport {
        group_seconds,
        group_speedup: projections_seconds / group_seconds.max(1e-9),
        group_equal,
        events: decoded.len(),
        decode_seconds,
        ledger_share: ledger_copies as f64 * ledger_seconds / projections_seconds.max(1e-9),
        rows,
        ledger_seconds,
        ledger_copies,
    })
}

pub fn print_fold_report(r: &FoldReport) {
    println!(
        "in-memory fold over {} events, no database (decoding them: {:.2} s)",
        r.events, r.decode_seconds
    );
    println!(
        "{:<24} {:>9} {:>9} {:>12}",
        "fold", "events", "seconds", "events/s"
    );
    for row in &r.rows {
        println!(
            "{:<24} {:>9} {:>9.2} {:>12.0}",
            row.name, row.events, row.seconds, row.events_per_s
        );
    }
    println!(
        "the payment rules' share of the projections' folds: {:.0}% ({} copies × {:.2} s)",
        r.ledger_share * 100.0,
        r.ledger_copies,
        r.ledger_seconds
    );
    println!(
        "the five over one shared ledger: {:.2} s, {:.2}× the five alone; rows {}",
        r.group_seconds,
        r.group_speedup,
        if r.group_equal {
            "equal to theirs"
        } else {
            "DIFFER from theirs (a defect)"
        }
    );
}
