//! The payment rules every projection shares (docs/projections.md): how a
//! charge is matched to a checkout, when it is a duplicate or a mismatch,
//! when it activates. `track` updates the ledger tables of the current schema
//! and says what changed; each projection turns the changes into its rows.

use crate::sql;
use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Transaction;
use payledger_events::{DomainEvent, RecordedEvent};
use tokio_postgres::Row;

pub const SCHEMA_SQL: &str = include_str!("ledger.sql");

/// A second charge for the same email and plan within this window is a
/// duplicate, not a renewal.
pub const DUPLICATE_WINDOW_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Checkout,
    Rescue,
}

impl Activation {
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::Checkout => "checkout",
            Activation::Rescue => "rescue",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LedgerChange {
    /// The payment now grants access to `email`'s account.
    Activated {
        payment_id: String,
        email: String,
        plan: String,
        activation: Activation,
        /// True when the activation came after the customer's normal path
        /// (reconciliation found the charge, or a rescue): they get the
        /// rescue email.
        late: bool,
        paid_at: DateTime<Utc>,
        money: Money,
    },
    Unmatched {
        payment_id: String,
        email: Option<String>,
        money: Money,
    },
    Duplicate {
        payment_id: String,
        email: Option<String>,
        money: Money,
        of_payment: String,
    },
    AmountMismatch {
        payment_id: String,
        email: Option<String>,
        money: Money,
        expected: Money,
    },
    /// A payment that was unmatched, duplicate or mismatched is settled.
    Settled { payment_id: String },
    Refunded {
        payment_id: String,
        refund_id: String,
        email: Option<String>,
        money: Money,
        fully: bool,
        charge_seen: bool,
    },
    /// A charge arrived for a payment that so far only had a refund.
    ChargeAfterRefund { payment_id: String },
    DisputeOpened {
        payment_id: String,
        dispute_id: String,
        email: Option<String>,
        money: Money,
    },
    DisputeClosed {
        payment_id: String,
        dispute_id: String,
        email: Option<String>,
        status: String,
    },
}

fn email_of(row: &Row) -> Option<String> {
    row.get::<_, Option<String>>("account_email")
        .or(row.get("customer_email"))
}

async fn payment(
    tx: &Transaction<'_>,
    payment_id: &str,
) -> Result<Option<Row>, tokio_postgres::Error> {
    sql::query_opt(
        tx,
        "SELECT * FROM ledger_payments WHERE payment_id = $1",
        &[&payment_id],
    )
    .await
}

pub async fn track(
    tx: &Transaction<'_>,
    event: &RecordedEvent,
    decoded: &DomainEvent,
) -> Result<Vec<LedgerChange>, tokio_postgres::Error> {
    match decoded {
        DomainEvent::CheckoutStarted(c) => {
            let id = c.checkout_id.to_string();
            sql::exec(tx,
                "INSERT INTO ledger_checkouts (checkout_id, email, plan, amount, currency, started_at)
                 VALUES ($1, lower($2), $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                &[&id, &c.email, &c.plan, &c.amount, &c.currency.as_str(), &event.recorded_at],
            )
            .await?;
            // A charge recorded before its checkout (a restored backup):
            // match it now.
            let waiting = sql::query(tx,
                    "SELECT * FROM ledger_payments
                     WHERE checkout_reference = $1 AND charge_seen AND state = 'unmatched' ORDER BY paid_at, payment_id",
                    &[&id],
                )
                .await?;
            let mut changes = vec![];
            for row in waiting {
                changes.push(LedgerChange::Settled {
                    payment_id: row.get("payment_id"),
                });
                changes.extend(match_to_checkout(tx, &row, true).await?);
            }
            Ok(changes)
        }
        DomainEvent::ChargeSucceeded(c) => {
            let existing = payment(tx, &c.payment_id).await?;
            if existing
                .as_ref()
                .is_some_and(|r| r.get::<_, bool>("charge_seen"))
            {
                return Ok(vec![]);
            }
            let late = c.source != payledger_events::ChargeSource::Webhook;
            let recorded = sql::query_one(tx,
                "INSERT INTO ledger_payments (payment_id, charge_seen, checkout_reference, customer_email, amount, currency, paid_at, source, state)
                 VALUES ($1, true, $2, lower($3), $4, $5, $6, $7, 'unmatched')
                 ON CONFLICT (payment_id) DO UPDATE SET charge_seen = true, checkout_reference = $2, customer_email = lower($3),
                     amount = $4, currency = $5, paid_at = $6, source = $7
                 RETURNING *",
                &[
                    &c.payment_id,
                    &c.checkout_reference,
                    &c.customer_email,
                    &c.amount,
                    &c.currency.as_str(),
                    &c.paid_at,
                    &format!("{:?}", c.source).to_lowercase(),
                ],
            )
            .await?;
            let mut changes = vec![];
            if existing
                .as_ref()
                .is_some_and(|r| r.get::<_, i64>("refunded") > 0)
            {
                changes.push(LedgerChange::ChargeAfterRefund {
                    payment_id: c.payment_id.clone(),
                });
            }
            // A match recorded before the charge itself arrived.
            if let Some(prior) = existing
                .as_ref()
                .filter(|r| r.get::<_, Option<String>>("plan").is_some())
            {
                let email: String = prior.get("account_email");
                let plan: String = prior.get("plan");
                changes.extend(
                    activate(tx, &c.payment_id, &email, &plan, Activation::Rescue, true).await?,
                );
                return Ok(changes);
            }
            changes.extend(match_to_checkout(tx, &recorded, late).await?);
            Ok(changes)
        }
        DomainEvent::ChargeMatched(m) => {
            let row = payment(tx, &m.payment_id).await?;
            match row {
                Some(r) if r.get::<_, bool>("charge_seen") => {
                    if r.get::<_, String>("state") == "active" {
                        return Ok(vec![]);
                    }
                    let mut changes = vec![LedgerChange::Settled {
                        payment_id: m.payment_id.clone(),
                    }];
                    changes.extend(
                        activate(
                            tx,
                            &m.payment_id,
                            &m.email,
                            &m.plan,
                            Activation::Rescue,
                            true,
                        )
                        .await?,
                    );
                    Ok(changes)
                }
                _ => {
                    // Remember the match; it takes effect when the charge arrives.
                    sql::exec(tx,
                        "INSERT INTO ledger_payments (payment_id, charge_seen, state, account_email, plan)
                         VALUES ($1, false, 'pending', lower($2), $3)
                         ON CONFLICT (payment_id) DO UPDATE SET account_email = lower($2), plan = $3",
                        &[&m.payment_id, &m.email, &m.plan],
                    )
                    .await?;
                    Ok(vec![])
                }
            }
        }
        DomainEvent::ChargeRefunded(r) => {
            let row = sql::query_one(
                tx,
                "INSERT INTO ledger_payments (payment_id, charge_seen, state, refunded)
                     VALUES ($1, false, 'pending', $2)
                     ON CONFLICT (payment_id) DO UPDATE SET refunded = ledger_payments.refunded + $2
                     RETURNING *",
                &[&r.payment_id, &r.amount],
            )
            .await?;
            let charge_seen: bool = row.get("charge_seen");
            let amount: Option<i64> = row.get("amount");
            Ok(vec![LedgerChange::Refunded {
                payment_id: r.payment_id.clone(),
                refund_id: r.refund_id.clone(),
                email: email_of(&row),
                money: Money {
                    amount: r.amount,
                    currency: r.currency.to_string(),
                },
                fully: charge_seen && amount.is_some_and(|a| row.get::<_, i64>("refunded") >= a),
                charge_seen,
            }])
        }
        DomainEvent::DisputeOpened(d) => {
            let email = payment(tx, &d.payment_id)
                .await?
                .as_ref()
                .and_then(email_of);
            Ok(vec![LedgerChange::DisputeOpened {
                payment_id: d.payment_id.clone(),
                dispute_id: d.dispute_id.clone(),
                email,
                money: Money {
                    amount: d.amount,
                    currency: d.currency.to_string(),
                },
            }])
        }
        DomainEvent::DisputeClosed(d) => {
            let email = payment(tx, &d.payment_id)
                .await?
                .as_ref()
                .and_then(email_of);
            Ok(vec![LedgerChange::DisputeClosed {
                payment_id: d.payment_id.clone(),
                dispute_id: d.dispute_id.clone(),
                email,
                status: d.status.clone(),
            }])
        }
        _ => Ok(vec![]),
    }
}

/// Matches a seen charge to its checkout by reference, or leaves it
/// unmatched.
async fn match_to_checkout(
    tx: &Transaction<'_>,
    p: &Row,
    late: bool,
) -> Result<Vec<LedgerChange>, tokio_postgres::Error> {
    let payment_id: &str = p.get("payment_id");
    let money = Money {
        amount: p.get::<_, Option<i64>>("amount").unwrap_or(0),
        currency: p.get::<_, Option<String>>("currency").unwrap_or_default(),
    };
    let email: Option<String> = p.get("customer_email");
    let reference: Option<String> = p.get("checkout_reference");
    let checkout = match &reference {
        Some(r) => {
            sql::query_opt(
                tx,
                "SELECT * FROM ledger_checkouts WHERE checkout_id = $1",
                &[r],
            )
            .await?
        }
        None => None,
    };
    let Some(checkout) = checkout else {
        return Ok(vec![LedgerChange::Unmatched {
            payment_id: payment_id.into(),
            email,
            money,
        }]);
    };
    let checkout_id: String = checkout.get("checkout_id");
    let account: String = checkout.get("email");
    let plan: String = checkout.get("plan");
    if let Some(first) = checkout
        .get::<_, Option<String>>("paid_payment_id")
        .filter(|f| f != payment_id)
    {
        set_state(tx, payment_id, "duplicate", Some(&account), Some(&plan)).await?;
        return Ok(vec![LedgerChange::Duplicate {
            payment_id: payment_id.into(),
            email: Some(account),
            money,
            of_payment: first,
        }]);
    }
    sql::exec(
        tx,
        "UPDATE ledger_checkouts SET paid_payment_id = $2 WHERE checkout_id = $1",
        &[&checkout_id, &payment_id],
    )
    .await?;
    let expected = Money {
        amount: checkout.get("amount"),
        currency: checkout.get("currency"),
    };
    if expected != money {
        set_state(tx, payment_id, "mismatch", Some(&account), Some(&plan)).await?;
        return Ok(vec![LedgerChange::AmountMismatch {
            payment_id: payment_id.into(),
            email: Some(account),
            money,
            expected,
        }]);
    }
    let paid_at: Option<DateTime<Utc>> = p.get("paid_at");
    let window_start = paid_at.map(|t| t - Duration::hours(DUPLICATE_WINDOW_HOURS));
    let twin = sql::query_opt(
        tx,
        "SELECT payment_id FROM ledger_payments
             WHERE account_email = $1 AND plan = $2 AND state = 'active' AND payment_id <> $3
               AND paid_at >= $4 AND paid_at <= $5
             ORDER BY paid_at, payment_id LIMIT 1",
        &[&account, &plan, &payment_id, &window_start, &paid_at],
    )
    .await?;
    if let Some(twin) = twin {
        set_state(tx, payment_id, "duplicate", Some(&account), Some(&plan)).await?;
        return Ok(vec![LedgerChange::Duplicate {
            payment_id: payment_id.into(),
            email: Some(account),
            money,
            of_payment: twin.get(0),
        }]);
    }
    activate(tx, payment_id, &account, &plan, Activation::Checkout, late).await
}

async fn set_state(
    tx: &Transaction<'_>,
    payment_id: &str,
    state: &str,
    account: Option<&str>,
    plan: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    sql::exec(tx,
        "UPDATE ledger_payments SET state = $2, account_email = lower($3), plan = $4 WHERE payment_id = $1",
        &[&payment_id, &state, &account, &plan],
    )
    .await
    .map(|_| ())
}

async fn activate(
    tx: &Transaction<'_>,
    payment_id: &str,
    email: &str,
    plan: &str,
    activation: Activation,
    late: bool,
) -> Result<Vec<LedgerChange>, tokio_postgres::Error> {
    let row = sql::query_one(tx,
            "UPDATE ledger_payments SET state = 'active', account_email = lower($2), plan = $3, activation = $4
             WHERE payment_id = $1 RETURNING amount, currency, paid_at, account_email",
            &[&payment_id, &email, &plan, &activation.as_str()],
        )
        .await?;
    Ok(vec![LedgerChange::Activated {
        payment_id: payment_id.into(),
        email: row.get("account_email"),
        plan: plan.into(),
        activation,
        late: late || activation == Activation::Rescue,
        paid_at: row
            .get::<_, Option<DateTime<Utc>>>("paid_at")
            .unwrap_or_default(),
        money: Money {
            amount: row.get::<_, Option<i64>>("amount").unwrap_or(0),
            currency: row.get::<_, Option<String>>("currency").unwrap_or_default(),
        },
    }])
}

/// The outbox key of the email a change asks for, and its kind.
pub fn email_for(change: &LedgerChange) -> Option<(String, &'static str, String)> {
    match change {
        LedgerChange::Activated {
            payment_id,
            email,
            late,
            ..
        } => {
            let kind = if *late {
                "rescue_confirmation"
            } else {
                "confirmation"
            };
            Some((format!("{kind}:{payment_id}"), kind, email.clone()))
        }
        LedgerChange::Refunded {
            refund_id,
            email: Some(email),
            charge_seen: true,
            ..
        } => Some((
            format!("refund_confirmation:{refund_id}"),
            "refund_confirmation",
            email.clone(),
        )),
        _ => None,
    }
}
