//! `audit invariants`: spec §10 guarantees 1, 2, 3 and 5 checked on the
//! live database; every violation listed.

use super::replay::replay;
use deadpool_postgres::Pool;
use payledger_events::Checkpoint;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub guarantee: u8,
    pub subject: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct InvariantReport {
    pub checked: Vec<&'static str>,
    pub violations: Vec<Violation>,
}

pub async fn check(pool: &Pool) -> anyhow::Result<InvariantReport> {
    let client = pool.get().await?;
    let mut violations = vec![];
    for r in client
        .query(include_str!("g1_one_charge_per_payment.sql"), &[])
        .await?
    {
        let (p, n): (String, i64) = (r.get(0), r.get(1));
        violations.push(Violation {
            guarantee: 1,
            subject: p,
            detail: format!("{n} ChargeSucceeded events for one payment"),
        });
    }
    for r in client
        .query(include_str!("g2_no_charge_in_silence.sql"), &[])
        .await?
    {
        let p: String = r.get(0);
        violations.push(Violation {
            guarantee: 2,
            subject: p,
            detail: "ChargeSucceeded with no active subscription, no refund and no discrepancy (is a projection stuck? payledger projections status)".into(),
        });
    }
    for r in client
        .query(include_str!("g3_no_access_without_charge.sql"), &[])
        .await?
    {
        let (email, activation): (String, String) = (r.get(0), r.get(1));
        violations.push(Violation {
            guarantee: 3,
            subject: email,
            detail: format!(
                "active subscription ({activation}) with no charge and no grant behind it"
            ),
        });
    }
    violations.extend(facts_not_in_their_callbacks(&client).await?);
    drop(client);
    for p in payledger_projections::all() {
        for table in p.public_tables() {
            let mut client = pool.get().await?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let state = tx
                .query_opt("SELECT checkpoint_tx, checkpoint_pos, status FROM projection_state WHERE name = $1", &[&p.name()])
                .await?;
            let Some(state) = state else {
                violations.push(Violation {
                    guarantee: 5,
                    subject: p.name().into(),
                    detail: "not installed (is payledger work running?)".into(),
                });
                continue;
            };
            let status: String = state.get(2);
            if status != payledger_projections::states::ProjectionState::Running.as_str() {
                violations.push(Violation {
                    guarantee: 5,
                    subject: p.name().into(),
                    detail: format!("projection is {status}"),
                });
            }
            let at = Checkpoint {
                transaction_id: state.get(0),
                position: state.get(1),
            };
            let live: Vec<String> = tx
                .query(
                    &format!("SELECT row_to_json(t)::text FROM public.{table} t ORDER BY 1"),
                    &[],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            tx.commit().await?;
            drop(client);
            let rebuilt: Vec<String> = replay(pool, p.as_ref(), table, None, Some(at))
                .await?
                .iter()
                .map(|v| v.to_string())
                .collect();
            let live: Vec<String> = live
                .iter()
                .filter_map(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .map(|v| v.to_string())
                .collect();
            if live != rebuilt {
                let differing = live.iter().filter(|r| !rebuilt.contains(r)).count()
                    + rebuilt.iter().filter(|r| !live.contains(r)).count();
                violations.push(Violation {
                    guarantee: 5,
                    subject: table.to_string(),
                    detail: format!("live and rebuilt differ: {} live rows, {} rebuilt, {differing} rows on one side only", live.len(), rebuilt.len()),
                });
            }
        }
    }
    Ok(InvariantReport {
        checked: vec![
            "1: every payment has exactly one ChargeSucceeded",
            "2: every ChargeSucceeded ends in an active subscription, a refund or a discrepancy",
            "3: no active subscription without a charge or a recorded grant",
            "5: every read model equals a replay of the log up to its checkpoint",
            "8: every fact recorded from a callback is stated by the body stored for it",
        ],
        violations,
    })
}

/// Facts are drawn only from the body that is stored under a callback's id:
/// each one the webhook recorded must be what that stored body states
/// today, with the same id and the same payload. A fact that is not (a
/// second body under a reused id, a rewritten record) is a violation.
async fn facts_not_in_their_callbacks(
    client: &deadpool_postgres::Object,
) -> anyhow::Result<Vec<Violation>> {
    use futures_util::TryStreamExt;
    use payledger_events::ProcessorEventReceived;
    let rows = client
        .query_raw(
            include_str!("callback_facts.sql"),
            std::iter::empty::<i32>(),
        )
        .await?;
    futures_util::pin_mut!(rows);
    let mut violations = vec![];
    // Rows come grouped by record: each stored body is mapped once.
    let mut current: Option<(
        uuid::Uuid,
        std::collections::HashMap<uuid::Uuid, serde_json::Value>,
    )> = None;
    while let Some(row) = rows.try_next().await? {
        let record_id: uuid::Uuid = row.get("record_id");
        if current.as_ref().is_none_or(|(id, _)| *id != record_id) {
            let record: ProcessorEventReceived = serde_json::from_value(row.get("record"))?;
            let body = crate::processor::mapping::stored_body_bytes(&record);
            let stated = crate::processor::mapping::map_callback(&body, record.received_at)?
                .appends
                .into_iter()
                .skip(1)
                .flat_map(|part| part.events)
                .map(|e| (e.event_id, e.payload))
                .collect();
            current = Some((record_id, stated));
        }
        let Some((_, stated)) = &current else {
            continue;
        };
        let event_id: uuid::Uuid = row.get("event_id");
        let payload: serde_json::Value = row.get("payload");
        let event_type: String = row.get("event_type");
        let subject = payload
            .get("payment_id")
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string();
        match stated.get(&event_id) {
            Some(p) if *p == payload => {}
            Some(_) => violations.push(Violation {
                guarantee: 8,
                subject,
                detail: format!(
                    "{event_type} {event_id} differs from what its callback's stored body states"
                ),
            }),
            None => violations.push(Violation {
                guarantee: 8,
                subject,
                detail: format!(
                    "{event_type} {event_id} is not stated by the body stored for its callback"
                ),
            }),
        }
    }
    Ok(violations)
}
