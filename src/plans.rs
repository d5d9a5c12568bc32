//! The plans a customer can buy, from the `PAYLEDGER_PLANS` TOML file.

use payledger_events::{Currency, Period};
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// Minor units of `currency`.
    pub amount: i64,
    pub currency: Currency,
    /// How long one paid period lasts, in calendar months or years counted
    /// from the first charge (docs/projections.md).
    pub period: Period,
    /// Whether the processor charges again at each period's end (its
    /// subscription mode); otherwise one payment buys one period.
    pub renews: bool,
    /// The processor's price id, when the product is set up there.
    pub processor_price_id: Option<String>,
}

impl Plan {
    pub fn price(&self) -> String {
        self.currency.format_amount(self.amount)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plans(Vec<Plan>);

#[derive(Debug, thiserror::Error)]
pub enum PlansError {
    #[error("PAYLEDGER_PLANS: cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("PAYLEDGER_PLANS: {path} is not valid TOML for plans: {reason}")]
    Malformed { path: String, reason: String },
    #[error("PAYLEDGER_PLANS: {path}: plan {id:?}: {reason}")]
    Invalid {
        path: String,
        id: String,
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    #[serde(default)]
    plan: Vec<PlanEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    id: String,
    name: String,
    amount: i64,
    currency: String,
    period: String,
    #[serde(default)]
    renews: bool,
    processor_price_id: Option<String>,
}

impl Plans {
    pub fn new(plans: Vec<Plan>) -> Self {
        Plans(plans)
    }

    pub fn all(&self) -> &[Plan] {
        &self.0
    }

    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.0.iter().find(|p| p.id == id)
    }

    /// The one-time plans priced exactly `amount` in `currency`: what a
    /// single charge can have bought (a renewing plan is paid by invoices
    /// of its subscription, never by a lone charge).
    pub fn priced(&self, amount: i64, currency: &str) -> Vec<&Plan> {
        self.0
            .iter()
            .filter(|p| !p.renews && p.amount == amount && p.currency.as_str() == currency)
            .collect()
    }

    pub fn load(path: &str) -> Result<Self, PlansError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlansError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, PlansError> {
        let file: PlansFile = toml::from_str(text).map_err(|e| PlansError::Malformed {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let mut plans = vec![];
        for p in file.plan {
            let invalid = |reason: String| PlansError::Invalid {
                path: path.into(),
                id: p.id.clone(),
                reason,
            };
            if p.id.is_empty()
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(invalid("the id must be letters, digits, - or _".into()));
            }
            if p.amount <= 0 {
                return Err(invalid(format!(
                    "amount {} must be positive (minor units, e.g. 24900 for $249)",
                    p.amount
                )));
            }
            let currency = Currency::new(&p.currency).map_err(|e| invalid(e.to_string()))?;
            if !currency.is_iso4217() {
                return Err(invalid(format!(
                    "currency {:?} is not an ISO 4217 code",
                    p.currency
                )));
            }
            let period: Period = p
                .period
                .parse()
                .map_err(|e| invalid(format!("period {e}")))?;
            if p.renews && p.processor_price_id.is_none() {
                return Err(invalid(
                    "a plan that renews needs processor_price_id (the processor's recurring price)"
                        .into(),
                ));
            }
            if plans.iter().any(|q: &Plan| q.id == p.id) {
                return Err(invalid("appears twice".into()));
            }
            plans.push(Plan {
                id: p.id,
                name: p.name,
                amount: p.amount,
                currency,
                period,
                renews: p.renews,
                processor_price_id: p.processor_price_id,
            });
        }
        if plans.is_empty() {
            return Err(PlansError::Malformed {
                path: path.into(),
                reason: "no [[plan]] entries".into(),
            });
        }
        Ok(Plans(plans))
    }

    /// From `PAYLEDGER_PLANS`; a missing variable is an error that names it.
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let path =
            crate::config::var("PAYLEDGER_PLANS").ok_or(crate::config::ConfigError::Missing {
                name: "PAYLEDGER_PLANS",
                hint: "point it at a TOML file of plans, e.g. plans.example.toml",
            })?;
        Self::load(path.trim()).map_err(|e| crate::config::ConfigError::Invalid {
            name: "PAYLEDGER_PLANS",
            reason: e.to_string(),
        })
    }
}

/// Records every plan sold at a processor price as `PlanOffered` (once per
/// pairing: the id follows from every field), so the log says which plan a
/// price means when a plan change names only the price.
pub async fn record_offers(
    store: &crate::store::PgEventStore,
    plans: &Plans,
) -> Result<(), crate::store::StoreError> {
    use crate::store::{EventStore, ExpectedVersion, StreamAppend};
    use payledger_events::{Actor, DomainEvent, EventData, Metadata, PlanOffered, StreamId};
    let mut batch = vec![];
    for plan in plans.all() {
        let Some(price_id) = &plan.processor_price_id else {
            continue;
        };
        let offer = PlanOffered {
            plan: plan.id.clone(),
            price_id: price_id.clone(),
            amount: plan.amount,
            currency: plan.currency.clone(),
            period: plan.period,
            renews: plan.renews,
        };
        let key = serde_json::to_string(&offer)?;
        let event: DomainEvent = offer.into();
        let metadata = Metadata::new(
            uuid::Uuid::new_v4(),
            Actor::System("start-up".into()),
            "plans-file",
        );
        batch.push(StreamAppend::new(
            StreamId::plan(&plan.id),
            ExpectedVersion::Any,
            vec![EventData::for_processor_fact(&event, &key, metadata)?],
        ));
    }
    if !batch.is_empty() {
        store.append(batch).await?;
    }
    Ok(())
}
