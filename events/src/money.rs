use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code, stored lowercase as the processor sends it
/// (`"usd"`). Amounts next to it are always integer minor units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

/// The text that is not a currency code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("currency code {0:?} is not three ASCII letters (ISO 4217)")]
pub struct CurrencyError(pub String);

impl Currency {
    /// A three-letter code, lowercased.
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Currency(code.to_ascii_lowercase()))
        } else {
            Err(CurrencyError(code.to_string()))
        }
    }

    /// The code, lowercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is an active ISO 4217 code. Three letters that name no
    /// currency (`"zzz"`) are well-formed but unknown; an amount in one is a
    /// fact payledger cannot act on without a person.
    pub fn is_iso4217(&self) -> bool {
        ISO_4217.split_whitespace().any(|c| c == self.0)
    }

    /// How many minor units make one major unit; zero-decimal currencies per
    /// the processor's documentation.
    pub fn minor_unit_digits(&self) -> u32 {
        const ZERO_DECIMAL: [&str; 16] = [
            "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd",
            "vuv", "xaf", "xof", "xpf",
        ];
        if ZERO_DECIMAL.contains(&self.0.as_str()) {
            0
        } else {
            2
        }
    }

    /// `24900` usd → `"249.00 USD"`; for people, never for arithmetic.
    pub fn format_amount(&self, minor: i64) -> String {
        let code = self.0.to_ascii_uppercase();
        match self.minor_unit_digits() {
            0 => format!("{minor} {code}"),
            _ => {
                let sign = if minor < 0 { "-" } else { "" };
                let abs = minor.unsigned_abs();
                format!("{sign}{}.{:02} {code}", abs / 100, abs % 100)
            }
        }
    }
}

/// An amount in integer minor units of one currency: what payledger stores
/// and compares. Shown to people through `Display` (`249.00 USD`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (cents).
    pub minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// Why a typed amount is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    /// Not digits with an optional decimal point.
    #[error("{0:?} is not an amount: write it like 249 or 249.00")]
    NotAnAmount(String),
    /// More decimals than the currency has.
    #[error("{text:?} has more decimals than {currency} has ({digits})")]
    TooPrecise {
        /// What was typed.
        text: String,
        /// The currency's code.
        currency: String,
        /// How many decimals it has.
        digits: u32,
    },
    /// Zero or less.
    #[error("{0:?} must be more than zero")]
    NotPositive(String),
    /// Too large for minor units in 64 bits.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

impl Money {
    /// `minor` units of `currency`.
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }

    /// From a read model's columns: both present and the code well formed.
    pub fn from_parts(minor: Option<i64>, currency: Option<&str>) -> Option<Money> {
        Some(Money::new(minor?, Currency::new(currency?).ok()?))
    }

    /// A positive amount as a person types it in major units (`249`,
    /// `249.5`, `249.00`; `1000` yen), exactly: no float ever touches it.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let trimmed = text.trim();
        let digits = currency.minor_unit_digits();
        let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
        let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !numeric(whole) || !numeric(fraction) {
            return Err(MoneyError::NotAnAmount(text.into()));
        }
        if fraction.len() > digits as usize || (trimmed.contains('.') && fraction.is_empty()) {
            return Err(if fraction.is_empty() {
                MoneyError::NotAnAmount(text.into())
            } else {
                MoneyError::TooPrecise {
                    text: text.into(),
                    currency: currency.as_str().to_ascii_uppercase(),
                    digits,
                }
            });
        }
        let scale = 10i64.pow(digits);
        let padded = format!("{fraction:0<width$}", width = digits as usize);
        let minor = whole
            .parse::<i64>()
            .ok()
            .and_then(|w| w.checked_mul(scale))
            .and_then(|w| w.checked_add(padded.parse::<i64>().unwrap_or(0)))
            .ok_or_else(|| MoneyError::TooLarge(text.into()))?;
        if minor <= 0 {
            return Err(MoneyError::NotPositive(text.into()));
        }
        Ok(Money::new(minor, currency))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.currency.format_amount(self.minor))
    }
}

const ISO_4217: &str = "aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bhd bif bmd bnd bob bov brl \
    bsd btn bwp byn bzd cad cdf che chf chw clf clp cny cop cou crc cuc cup cve czk djf dkk dop dzd egp ern etb \
    eur fjd fkp gbp gel ghs gip gmd gnf gtq gyd hkd hnl hrk htg huf idr ils inr iqd irr isk jmd jod jpy kes kgs \
    khr kmf kpw krw kwd kyd kzt lak lbp lkr lrd lsl lyd mad mdl mga mkd mmk mnt mop mru mur mvr mwk mxn mxv myr \
    mzn nad ngn nio nok npr nzd omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sdg sek sgd shp \
    sle sll sos srd ssp stn svc syp szl thb tjs tmt tnd top try ttd twd tzs uah ugx usd usn uyi uyu uyw uzs ved \
    ves vnd vuv wst xaf xcd xof xpf yer zar zmw zwl";

impl TryFrom<String> for Currency {
    type Error = CurrencyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::new(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::new("usd").unwrap()
    }

    #[test]
    fn typed_amounts_parse_exactly_in_minor_units() {
        assert_eq!(Money::parse("249", usd()).unwrap().minor, 24900);
        assert_eq!(Money::parse("249.5", usd()).unwrap().minor, 24950);
        assert_eq!(Money::parse(" 0.07 ", usd()).unwrap().minor, 7);
        let yen = Currency::new("jpy").unwrap();
        assert_eq!(Money::parse("1000", yen.clone()).unwrap().minor, 1000);
        assert!(matches!(
            Money::parse("10.5", yen),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1.001", usd()),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in ["", "-5", "1e3", "12.", ".5", "1,00", "abc", "1.2.3"] {
            assert!(
                matches!(Money::parse(bad, usd()), Err(MoneyError::NotAnAmount(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            Money::parse("0.00", usd()),
            Err(MoneyError::NotPositive("0.00".into()))
        );
        assert!(matches!(
            Money::parse("99999999999999999999", usd()),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn money_shows_in_major_units_with_its_code() {
        assert_eq!(Money::new(24900, usd()).to_string(), "249.00 USD");
        assert_eq!(
            Money::from_parts(Some(5), Some("eur")).unwrap().to_string(),
            "0.05 EUR"
        );
        assert_eq!(Money::from_parts(None, Some("eur")), None);
        assert_eq!(Money::from_parts(Some(5), Some("euro")), None);
    }

    #[test]
    fn currency_is_normalised_and_validated() {
        assert_eq!(Currency::new("USD").unwrap().as_str(), "usd");
        assert!(Currency::new("us").is_err());
        assert!(Currency::new("u5d").is_err());
        assert!(Currency::new("eur").unwrap().is_iso4217());
        assert!(!Currency::new("zzz").unwrap().is_iso4217());
    }

    #[test]
    fn amounts_format_in_major_units() {
        let usd = Currency::new("usd").unwrap();
        assert_eq!(usd.format_amount(24900), "249.00 USD");
        assert_eq!(usd.format_amount(-5), "-0.05 USD");
        assert_eq!(Currency::new("jpy").unwrap().format_amount(500), "500 JPY");
    }
}
