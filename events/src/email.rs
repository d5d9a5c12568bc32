//! Email addresses as payledger accepts them. Every address a customer
//! or a person at the desk types goes through [`valid_email`]: it ends up
//! in emails sent, pages shown and commands staff paste into a shell.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An address that passed [`valid_email`], trimmed and lowercased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// The text that is not an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an email address")]
pub struct EmailError(pub String);

impl Email {
    /// A trimmed, lowercased address, or why not.
    pub fn parse(text: &str) -> Result<Email, EmailError> {
        let trimmed = text.trim();
        if valid_email(trimmed) {
            Ok(Email(trimmed.to_lowercase()))
        } else {
            Err(EmailError(text.into()))
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> Self {
        value.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `user@domain.tld`, no spaces, at most 254 characters: what a careful
/// form accepts before asking a mail server.
pub fn valid_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254 && valid_local_part(local) && valid_domain(domain)
}

/// Looser than [`valid_email`]: what the processor may have recorded for a
/// customer (anything with one `@` and a dotted domain, no spaces or
/// control characters). For finding customers, never for accepting input.
pub fn plausible_email(email: &str) -> bool {
    let email = email.trim();
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The dot-atom mail servers accept in practice: letters, digits and
/// `.+_-'!#%*/=?^{}~`. Shell and quoting characters (`` ` ``, `$`, `|`,
/// `&`, `;`, parentheses, quotes) are refused although RFC 5322 allows some:
/// no real mailbox needs them, and they end up in commands staff paste.
fn valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || ".+_-'!#%*/=?^{}~".contains(c))
}

/// Host names: labels of letters, digits and hyphens, 1–63 long, not
/// starting or ending with a hyphen; at least two labels.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_trimmed_lowercased_and_refused_by_name() {
        assert_eq!(
            Email::parse(" A@Example.COM ").unwrap().as_str(),
            "a@example.com"
        );
        for bad in [
            "",
            "a",
            "a@b",
            "a b@example.com",
            "a;rm@example.com",
            "a$(x)@example.com",
            "@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError(bad.into())), "{bad:?}");
        }
        assert!(plausible_email("odd\"name@example.com"));
        assert!(!valid_email("odd\"name@example.com"));
    }
}
