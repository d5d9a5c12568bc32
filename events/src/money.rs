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
    }

    #[test]
    fn amounts_format_in_major_units() {
        let usd = Currency::new("usd").unwrap();
        assert_eq!(usd.format_amount(24900), "249.00 USD");
        assert_eq!(usd.format_amount(-5), "-0.05 USD");
        assert_eq!(Currency::new("jpy").unwrap().format_amount(500), "500 JPY");
    }
}
