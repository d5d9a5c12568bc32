//! Asked before access ends, does the processor's answer fit the ledger?
//! Pure: the ledger's row, what the processor said and what of its answer
//! was paid, at one instant. The facts of the answer are appended anyway;
//! this is what stays wrong after them, for a person to look at.

use chrono::{DateTime, Duration, Utc};
use payledger_events::SubscriptionDisagreement;
use payledger_projections::discrepancies::NO_PAID_PERIOD;
use payledger_projections::read::subscriptions::EndingAccess;
use payledger_projections::states::SubscriptionStatus;

/// What the processor said about one subscription.
#[derive(Debug, Clone)]
pub struct ProcessorAnswer {
    /// `active`, `trialing`, `past_due`, `unpaid`, `canceled`, …
    pub status: String,
    /// The end of its current period, if it names one.
    pub period_end: Option<DateTime<Utc>>,
    /// The end of the latest period its paid invoices pay for.
    pub paid_until: Option<DateTime<Utc>>,
}

/// Periods a day apart or less are the same period (time zones, the
/// processor's seconds).
const SAME_PERIOD: i64 = 1;

/// The disagreement that remains once every fact of the answer is in the
/// ledger, if any.
pub fn disagreement(
    ledger: &EndingAccess,
    processor: &ProcessorAnswer,
    now: DateTime<Utc>,
) -> Option<SubscriptionDisagreement> {
    // Ended or scheduled to end at the processor: its facts say so and the
    // ledger follows; a past-due ledger is the processor's own retrying.
    if ledger.status != SubscriptionStatus::Active {
        return None;
    }
    let covered_until = processor
        .paid_until
        .map_or(ledger.period_end, |p| p.max(ledger.period_end));
    let shown = |at: Option<DateTime<Utc>>| {
        at.map_or_else(
            || "no date".to_string(),
            |a| a.format("%Y-%m-%d").to_string(),
        )
    };
    let (kind, detail) = match processor.status.as_str() {
        "past_due" | "unpaid" => (
            "status",
            format!(
                "the processor says {} but the ledger saw no failed attempt and says active (paid until {})",
                processor.status,
                shown(Some(covered_until))
            ),
        ),
        "active" | "trialing" if covered_until <= now => (
            NO_PAID_PERIOD,
            format!(
                "the processor says {} (its period ends {}) but no paid invoice covers now: paid until {}",
                processor.status,
                shown(processor.period_end),
                shown(Some(covered_until))
            ),
        ),
        "active" | "trialing"
            if processor
                .period_end
                .is_some_and(|p| covered_until > p + Duration::days(SAME_PERIOD)) =>
        {
            (
                "period",
                format!(
                    "the ledger has access paid until {} but the processor's current period ends {}",
                    shown(Some(covered_until)),
                    shown(processor.period_end)
                ),
            )
        }
        _ => return None,
    };
    Some(SubscriptionDisagreement {
        subscription_id: ledger.subscription_id.clone(),
        email: Some(ledger.email.clone()),
        kind: kind.into(),
        ledger_status: ledger.status.as_str().into(),
        ledger_period_end: ledger.period_end,
        processor_status: processor.status.clone(),
        processor_period_end: processor.period_end,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 11, day, 12, 0, 0).unwrap()
    }

    fn ledger(status: SubscriptionStatus, period_end: DateTime<Utc>) -> EndingAccess {
        EndingAccess {
            email: "ann@example.com".into(),
            subscription_id: "sub_1".into(),
            status,
            period_end,
        }
    }

    fn answer(
        status: &str,
        period_end: DateTime<Utc>,
        paid_until: Option<DateTime<Utc>>,
    ) -> ProcessorAnswer {
        ProcessorAnswer {
            status: status.into(),
            period_end: Some(period_end),
            paid_until,
        }
    }

    #[test]
    fn a_renewal_paid_at_the_processor_is_no_disagreement_once_its_fact_is_in() {
        let next = at(28) + Duration::days(365);
        let found = disagreement(
            &ledger(SubscriptionStatus::Active, at(28)),
            &answer("active", next, Some(next)),
            at(29),
        );
        assert_eq!(found, None);
    }

    #[test]
    fn before_the_period_ends_an_unpaid_new_period_is_not_yet_a_disagreement() {
        // The processor moves its period at the renewal and collects later.
        let found = disagreement(
            &ledger(SubscriptionStatus::Active, at(28)),
            &answer("active", at(28) + Duration::days(365), Some(at(28))),
            at(27),
        );
        assert_eq!(found, None);
    }

    #[test]
    fn access_kept_past_the_paid_end_with_nothing_paid_is_no_paid_period() {
        let found = disagreement(
            &ledger(SubscriptionStatus::Active, at(28)),
            &answer("active", at(28) + Duration::days(365), Some(at(28))),
            at(29),
        )
        .unwrap();
        assert_eq!(found.kind, NO_PAID_PERIOD);
        assert_eq!(found.ledger_period_end, at(28));
        assert!(
            found.detail.contains("no paid invoice covers now"),
            "{}",
            found.detail
        );
    }

    #[test]
    fn a_past_due_processor_beside_an_active_ledger_is_a_status_disagreement() {
        for status in ["past_due", "unpaid"] {
            let found = disagreement(
                &ledger(SubscriptionStatus::Active, at(28)),
                &answer(status, at(28) + Duration::days(365), Some(at(28))),
                at(29),
            )
            .unwrap();
            assert_eq!(found.kind, "status");
            assert!(found.detail.contains(status), "{}", found.detail);
        }
    }

    #[test]
    fn a_ledger_paid_beyond_the_processors_period_is_a_period_disagreement() {
        let found = disagreement(
            &ledger(SubscriptionStatus::Active, at(28) + Duration::days(30)),
            &answer("active", at(28), Some(at(28))),
            at(20),
        )
        .unwrap();
        assert_eq!(found.kind, "period");
        // Within a day is the same period.
        let same = disagreement(
            &ledger(SubscriptionStatus::Active, at(28) + Duration::hours(20)),
            &answer("active", at(28), Some(at(28))),
            at(20),
        );
        assert_eq!(same, None);
    }

    #[test]
    fn a_subscription_the_ledger_has_past_due_cancelled_or_ended_is_left_to_its_facts() {
        for status in [
            SubscriptionStatus::PastDue,
            SubscriptionStatus::Canceled,
            SubscriptionStatus::Ended,
        ] {
            let found = disagreement(
                &ledger(status, at(28)),
                &answer("past_due", at(28) + Duration::days(365), None),
                at(29),
            );
            assert_eq!(found, None, "{status:?}");
        }
    }
}
