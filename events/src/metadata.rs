use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Who caused an event. Rendered as `system:webhook`, `support:alice`,
/// `customer:ann@example.com`: the audit log shows a name, never a guess.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Actor {
    /// payledger itself (`webhook`, `reconciler`, `auto-rescue`, …).
    System(String),
    /// A person at the desk, by name.
    Support(String),
    /// A customer, by address.
    Customer(String),
}

impl Actor {
    /// The webhook endpoint.
    pub fn webhook() -> Self {
        Actor::System("webhook".into())
    }
    /// Reconciliation.
    pub fn reconciler() -> Self {
        Actor::System("reconciler".into())
    }
    /// The auto-rescue reactor.
    pub fn auto_rescue() -> Self {
        Actor::System("auto-rescue".into())
    }
    /// The worker's check before a renewing plan's access ends.
    pub fn renewal_check() -> Self {
        Actor::System("renewal-check".into())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System(n) => write!(f, "system:{n}"),
            Actor::Support(n) => write!(f, "support:{n}"),
            Actor::Customer(e) => write!(f, "customer:{e}"),
        }
    }
}

impl From<Actor> for String {
    fn from(a: Actor) -> Self {
        a.to_string()
    }
}

impl TryFrom<String> for Actor {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let (kind, name) = s.split_once(':').ok_or_else(|| {
            format!("actor {s:?} has no kind (expected system:, support: or customer:)")
        })?;
        if name.is_empty() {
            return Err(format!("actor {s:?} has an empty name"));
        }
        match kind {
            "system" => Ok(Actor::System(name.into())),
            "support" => Ok(Actor::Support(name.into())),
            "customer" => Ok(Actor::Customer(name.into())),
            _ => Err(format!(
                "actor kind {kind:?} is not system, support or customer"
            )),
        }
    }
}

/// Carried by every event: why it happened, who did it, and through which
/// door it came in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// What this event belongs to (a request, a run, a checkout).
    pub correlation_id: Uuid,
    /// The event that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// Who caused it.
    pub actor: Actor,
    /// The entry point: `webhook`, `reconciliation`, `cli`, `checkout`, ...
    pub source: String,
    /// Schema version of the payload, so a reader can upcast old shapes.
    pub schema_version: u32,
}

impl Metadata {
    /// Metadata for an event caused by `actor` through `source`.
    pub fn new(correlation_id: Uuid, actor: Actor, source: impl Into<String>) -> Self {
        Metadata {
            correlation_id,
            causation_id: None,
            actor,
            source: source.into(),
            schema_version: 1,
        }
    }

    /// The same, caused by the event `causation_id`.
    pub fn caused_by(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_round_trip_through_their_text_form() {
        for a in [
            Actor::webhook(),
            Actor::Support("alice".into()),
            Actor::Customer("a@b.c".into()),
        ] {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), a);
        }
        assert_eq!(Actor::Support("alice".into()).to_string(), "support:alice");
        assert!(Actor::try_from("robot".to_string()).is_err());
        assert!(Actor::try_from("support:".to_string()).is_err());
    }
}
