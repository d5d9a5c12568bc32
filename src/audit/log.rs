//! `audit log`: every event matching the filters, in log order, a page at a
//! time (constant memory on millions of events).

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::io::Write;

#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    pub stream: Option<String>,
    pub event_type: Option<String>,
    pub actor: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

const PAGE: i64 = 2000;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the log to `out`; returns how many events. `progress` hears the
/// count after each page.
pub async fn write_log(
    pool: &Pool,
    filter: &LogFilter,
    format: Format,
    out: &mut dyn Write,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> anyhow::Result<u64> {
    let mut client = pool.get().await?;
    // One query, read through a portal a page at a time: the server keeps
    // the cursor, this process keeps one page.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let statement = tx.prepare(include_str!("log_query.sql")).await?;
    let portal = tx
        .bind(
            &statement,
            &[
                &filter.stream,
                &filter.event_type,
                &filter.actor,
                &filter.from,
                &filter.to,
            ],
        )
        .await?;
    let mut n = 0u64;
    match format {
        Format::Json => write!(out, "[")?,
        Format::Csv => writeln!(out, "position,transaction_id,recorded_at,stream_id,stream_version,event_type,event_id,actor,source,payload")?,
        Format::Text => {}
    }
    loop {
        let rows = tx.query_portal(&portal, PAGE as i32).await?;
        for r in &rows {
            let position: i64 = r.get("position");
            let transaction_id: i64 = r.get("transaction_id");
            let recorded_at: DateTime<Utc> = r.get("recorded_at");
            let stream: String = r.get("stream_id");
            let version: i64 = r.get("stream_version");
            let event_type: String = r.get("event_type");
            let event_id: uuid::Uuid = r.get("event_id");
            let metadata: serde_json::Value = r.get("metadata");
            let payload: serde_json::Value = r.get("payload");
            let actor = metadata["actor"].as_str().unwrap_or_default().to_string();
            let source = metadata["source"].as_str().unwrap_or_default().to_string();
            match format {
                Format::Json => {
                    let item = serde_json::json!({
                        "position": position, "transaction_id": transaction_id, "recorded_at": recorded_at,
                        "stream_id": stream, "stream_version": version, "event_type": event_type,
                        "event_id": event_id, "metadata": metadata, "payload": payload,
                    });
                    write!(out, "{}{}", if n == 0 { "\n" } else { ",\n" }, item)?;
                }
                Format::Csv => writeln!(
                    out,
                    "{position},{transaction_id},{},{},{version},{},{event_id},{},{},{}",
                    recorded_at.to_rfc3339(),
                    csv_field(&stream),
                    csv_field(&event_type),
                    csv_field(&actor),
                    csv_field(&source),
                    csv_field(&payload.to_string())
                )?,
                Format::Text => writeln!(
                    out,
                    "{:>8}  {}  {:<22} {:<40} {}",
                    position,
                    recorded_at.format("%Y-%m-%d %H:%M:%S"),
                    event_type,
                    stream,
                    actor
                )?,
            }
            n += 1;
        }
        progress(n);
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    tx.commit().await?;
    if format == Format::Json {
        writeln!(out, "{}]", if n == 0 { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(n)
}
