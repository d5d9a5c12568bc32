use uuid::Uuid;

/// The fixed namespace of deterministic event ids. Changing it would make the
/// webhook, reconciliation and support produce different ids for one fact, so
/// it never changes.
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1d_2c3a_9b7e_4d21_8a5f_0c6b_3e9d_7a41);

/// The id of an event that describes a processor fact:
/// UUIDv5(namespace, `"<event type>:<processor object id>"`). Every path that
/// learns the fact computes the same id, so the store keeps it once.
pub fn deterministic_event_id(event_type: &str, processor_object_id: &str) -> Uuid {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{event_type}:{processor_object_id}").as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_fact_gives_same_id_and_other_facts_differ() {
        let a = deterministic_event_id("ChargeSucceeded", "pi_123");
        assert_eq!(a, deterministic_event_id("ChargeSucceeded", "pi_123"));
        assert_ne!(a, deterministic_event_id("ChargeRefunded", "pi_123"));
        assert_ne!(a, deterministic_event_id("ChargeSucceeded", "pi_124"));
        assert_eq!(a.get_version_num(), 5);
    }
}
