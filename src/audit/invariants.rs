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
            if status != "running" {
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
        ],
        violations,
    })
}
