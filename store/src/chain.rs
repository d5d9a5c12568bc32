//! The tamper-evident hash chain.
//!
//! One sealer at a time (a transaction-scoped advisory lock) follows the
//! gap-safe global order a moment behind the writers and appends
//! `hash = SHA-256(prev_hash || canonical_bytes(event))` to `event_chain`.
//! Writers never wait for it. The chain order is the (transaction id,
//! position) order every reader sees, so it is well defined and stable.

use super::StoreError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const SEALER_LOCK: i64 = 0x7061_796c_6564_6701; // "payledg" + 1
const GENESIS: [u8; 32] = [0; 32];

const SEAL_READ_SQL: &str = include_str!("seal_read.sql");
const VERIFY_READ_SQL: &str = include_str!("verify_read.sql");

/// The bytes an event is hashed over. Text fields are length-prefixed so no
/// two different events can produce the same bytes; JSON is PostgreSQL's own
/// `jsonb` text rendering, which is canonical for a stored value.
#[allow(clippy::too_many_arguments)]
pub fn canonical_bytes(
    position: i64,
    stream_id: &str,
    stream_version: i64,
    event_id: Uuid,
    event_type: &str,
    payload_text: &str,
    metadata_text: &str,
    recorded_at: DateTime<Utc>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + payload_text.len() + metadata_text.len());
    out.extend_from_slice(b"payledger-event-v1");
    out.extend_from_slice(&position.to_be_bytes());
    push_text(&mut out, stream_id);
    out.extend_from_slice(&stream_version.to_be_bytes());
    out.extend_from_slice(event_id.as_bytes());
    push_text(&mut out, event_type);
    push_text(&mut out, payload_text);
    push_text(&mut out, metadata_text);
    out.extend_from_slice(&recorded_at.timestamp_micros().to_be_bytes());
    out
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u64).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn chain_hash(prev: &[u8], canonical: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

fn row_canonical_bytes(row: &tokio_postgres::Row) -> Vec<u8> {
    canonical_bytes(
        row.get("position"),
        row.get("stream_id"),
        row.get("stream_version"),
        row.get("event_id"),
        row.get("event_type"),
        row.get("payload_text"),
        row.get("metadata_text"),
        row.get("recorded_at"),
    )
}

/// Seals every event the gap-safe order has made readable. Returns how many
/// were sealed; 0 also when another sealer holds the lock.
pub async fn seal_pending(pool: &Pool, batch_size: i64) -> Result<u64, StoreError> {
    let mut client = pool.get().await?;
    let mut total = 0u64;
    loop {
        let tx = client.transaction().await?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&SEALER_LOCK])
            .await?
            .get(0);
        if !locked {
            return Ok(total);
        }
        let head = tx
            .query_opt(
                "SELECT seq, transaction_id, position, hash FROM event_chain ORDER BY seq DESC LIMIT 1",
                &[],
            )
            .await?;
        let (mut seq, after_tx, after_pos, mut prev) = match head {
            Some(r) => (
                r.get::<_, i64>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2),
                r.get::<_, Vec<u8>>(3),
            ),
            None => (0, 0, 0, GENESIS.to_vec()),
        };
        let rows = tx
            .query(SEAL_READ_SQL, &[&after_tx, &after_pos, &batch_size])
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(total);
        }
        let (mut seqs, mut positions, mut txids, mut hashes) = (vec![], vec![], vec![], vec![]);
        for row in &rows {
            seq += 1;
            let hash = chain_hash(&prev, &row_canonical_bytes(row));
            seqs.push(seq);
            positions.push(row.get::<_, i64>("position"));
            txids.push(row.get::<_, i64>("transaction_id"));
            hashes.push(hash.to_vec());
            prev = hash.to_vec();
        }
        tx.execute(
            "INSERT INTO event_chain (seq, position, transaction_id, hash)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[])",
            &[&seqs, &positions, &txids, &hashes],
        )
        .await?;
        tx.commit().await?;
        total += rows.len() as u64;
        if (rows.len() as i64) < batch_size {
            return Ok(total);
        }
    }
}

/// Where the chain first stops matching the log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainBreak {
    /// The chain link that does not verify.
    pub seq: i64,
    /// The log position it seals.
    pub position: i64,
    /// What is wrong with it.
    pub reason: String,
}

/// The result of walking the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// Links checked before the first break (all of them when intact).
    pub verified: u64,
    /// Events readable in the global order but not sealed yet.
    pub unsealed: u64,
    /// The first link that does not verify, if any.
    pub first_break: Option<ChainBreak>,
}

/// Walks the whole chain from the genesis and names the first link whose
/// event is missing or whose recomputed hash differs. Read-only: an auditor
/// role can run it.
pub async fn verify_chain(pool: &Pool) -> Result<ChainReport, StoreError> {
    verify_chain_reporting(pool, &|_| {}).await
}

/// How many links the chain has (what [`verify_chain`] will walk).
pub async fn chain_length(pool: &Pool) -> Result<u64, StoreError> {
    let client = pool.get().await?;
    let seq: Option<i64> = client
        .query_one("SELECT max(seq) FROM event_chain", &[])
        .await?
        .get(0);
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// [`verify_chain`], telling `progress` how many links it has verified
/// after each page (a terminal shows it as a progress bar).
pub async fn verify_chain_reporting(
    pool: &Pool,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<ChainReport, StoreError> {
    const PAGE: i64 = 5_000;
    let client = pool.get().await?;
    let mut prev = GENESIS.to_vec();
    let (mut last_seq, mut last_tx, mut last_pos) = (0i64, 0i64, 0i64);
    let mut verified = 0u64;
    loop {
        let rows = client.query(VERIFY_READ_SQL, &[&last_seq, &PAGE]).await?;
        for row in &rows {
            let seq: i64 = row.get("seq");
            let position: i64 = row.get("chain_position");
            let broken = |reason: String| ChainBreak {
                seq,
                position,
                reason,
            };
            if seq != last_seq + 1 {
                return Ok(report(
                    verified,
                    0,
                    Some(broken(format!("link {} is missing", last_seq + 1))),
                ));
            }
            if row.get::<_, Option<i64>>("position").is_none() {
                return Ok(report(
                    verified,
                    0,
                    Some(broken("the sealed event is gone from the log".into())),
                ));
            }
            let computed = chain_hash(&prev, &row_canonical_bytes(row));
            let stored: Vec<u8> = row.get("hash");
            if stored != computed {
                return Ok(report(
                    verified,
                    0,
                    Some(broken(
                        "the event's content does not match its sealed hash".into(),
                    )),
                ));
            }
            prev = stored;
            last_seq = seq;
            last_tx = row.get("transaction_id");
            last_pos = position;
            verified += 1;
        }
        progress(verified);
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    // An event below the sealed head that the chain never saw was slipped in
    // behind the sealer's back.
    let slipped = client
        .query_opt(
            "SELECT e.position FROM events e
             WHERE (e.transaction_id, e.position) <= ($1, $2)
               AND NOT EXISTS (SELECT 1 FROM event_chain c
                               WHERE c.transaction_id = e.transaction_id AND c.position = e.position)
             ORDER BY e.transaction_id, e.position LIMIT 1",
            &[&last_tx, &last_pos],
        )
        .await?;
    if let Some(row) = slipped {
        let position: i64 = row.get(0);
        return Ok(report(
            verified,
            0,
            Some(ChainBreak {
                seq: last_seq,
                position,
                reason: "an event inside the sealed range is not in the chain".into(),
            }),
        ));
    }
    let unsealed: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE (transaction_id, position) > ($1, $2)",
            &[&last_tx, &last_pos],
        )
        .await?
        .get(0);
    Ok(report(verified, unsealed as u64, None))
}

fn report(verified: u64, unsealed: u64, first_break: Option<ChainBreak>) -> ChainReport {
    ChainReport {
        verified,
        unsealed,
        first_break,
    }
}
