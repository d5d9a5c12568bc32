use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code, stored lowercase as the processor sends it
/// (`"usd"`). Amounts next to it are always integer minor units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("currency code {0:?} is not three ASCII letters (ISO 4217)")]
pub struct CurrencyError(pub String);

impl Currency {
    pub fn new(code: &str) -> Result<Self, CurrencyError> {
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Currency(code.to_ascii_lowercase()))
        } else {
            Err(CurrencyError(code.to_string()))
        }
    }

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
