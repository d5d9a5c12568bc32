//! Billing periods the way the processor counts them (spec §12): anchored on
//! the moment of the first charge, each period end is the anchor plus whole
//! months or years, clamped to the last day of a shorter month — and
//! counted from the anchor every time, so a period that was clamped does not
//! drag the following ones (31 January → 28 February → 31 March).

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// How long one period of a plan lasts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A calendar month.
    Month,
    /// A calendar year (what every plan was before plans had a period).
    #[default]
    Year,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "month" => Ok(Period::Month),
            "year" => Ok(Period::Year),
            other => Err(format!("{other:?} is not \"month\" or \"year\"")),
        }
    }
}

impl Period {
    /// As written in the plans file and the read models.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Year => "year",
        }
    }
}

impl Period {
    fn months(self) -> i64 {
        match self {
            Period::Month => 1,
            Period::Year => 12,
        }
    }
}

/// The end of the `n`th period that began at `anchor` (`n` = 1: the end of
/// the first period). The time of day is the anchor's.
pub fn period_end(anchor: DateTime<Utc>, period: Period, n: u32) -> DateTime<Utc> {
    let months = i64::from(anchor.month0()) + period.months() * i64::from(n);
    let year = i64::from(anchor.year()) + months.div_euclid(12);
    let month0 = months.rem_euclid(12);
    let (Ok(year), Ok(month)) = (i32::try_from(year), u32::try_from(month0 + 1)) else {
        return DateTime::<Utc>::MAX_UTC;
    };
    let day = anchor.day().min(last_day_of_month(year, month));
    NaiveDate::from_ymd_opt(year, month, day)
        .map(|date| date.and_time(anchor.time()).and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(next_year, next_month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(28, |last| last.day())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 21, 16, 59).unwrap()
    }

    fn day(t: DateTime<Utc>) -> String {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    #[test]
    fn the_thirty_first_of_january_renews_on_the_last_day_of_february_then_the_thirty_first_again()
    {
        let anchor = at(2027, 1, 31);
        assert_eq!(
            day(period_end(anchor, Period::Month, 1)),
            "2027-02-28 21:16:59"
        );
        assert_eq!(
            day(period_end(anchor, Period::Month, 2)),
            "2027-03-31 21:16:59"
        );
        assert_eq!(
            day(period_end(anchor, Period::Month, 3)),
            "2027-04-30 21:16:59"
        );
        // A leap year's February has its 29th.
        assert_eq!(
            day(period_end(at(2028, 1, 31), Period::Month, 1)),
            "2028-02-29 21:16:59"
        );
    }

    #[test]
    fn twelve_monthly_renewals_from_the_thirty_first_end_where_a_year_does() {
        let anchor = at(2027, 1, 31);
        let ends: Vec<String> = (1..=12)
            .map(|n| day(period_end(anchor, Period::Month, n))[5..10].to_string())
            .collect();
        assert_eq!(
            ends,
            [
                "02-28", "03-31", "04-30", "05-31", "06-30", "07-31", "08-31", "09-30", "10-31",
                "11-30", "12-31", "01-31"
            ]
        );
        assert_eq!(
            period_end(anchor, Period::Month, 12),
            period_end(anchor, Period::Year, 1)
        );
    }

    #[test]
    fn the_twenty_ninth_of_february_renews_on_the_twenty_eighth_until_the_next_leap_year() {
        let anchor = at(2028, 2, 29);
        assert_eq!(
            day(period_end(anchor, Period::Year, 1)),
            "2029-02-28 21:16:59"
        );
        assert_eq!(
            day(period_end(anchor, Period::Year, 3)),
            "2031-02-28 21:16:59"
        );
        assert_eq!(
            day(period_end(anchor, Period::Year, 4)),
            "2032-02-29 21:16:59"
        );
    }

    #[test]
    fn a_year_from_an_ordinary_day_is_the_same_day_and_time() {
        assert_eq!(
            day(period_end(at(2026, 11, 28), Period::Year, 1)),
            "2027-11-28 21:16:59"
        );
        assert_eq!(
            day(period_end(at(2026, 12, 15), Period::Month, 1)),
            "2027-01-15 21:16:59"
        );
    }

    #[test]
    fn absurdly_many_periods_saturate_instead_of_panicking() {
        assert_eq!(
            period_end(at(2026, 1, 1), Period::Year, u32::MAX),
            DateTime::<Utc>::MAX_UTC
        );
    }
}
