//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"<t>.<raw body>"`,
//! HMAC-SHA256, any configured secret, any `v1`, within the tolerance.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header: {0}")]
    Malformed(&'static str),
    #[error("signature timestamp is {age_seconds} s away from now, outside the tolerance of {TOLERANCE_SECONDS} s")]
    OutsideTolerance { age_seconds: i64 },
    #[error("no v1 signature matches the body with any configured secret (wrong secret or altered body)")]
    NoMatch,
}

struct ParsedHeader {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    let mut timestamp = None;
    let mut signatures = vec![];
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("an element is not key=value"));
        };
        match key {
            "t" => {
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("t is not a unix timestamp"))?;
                timestamp.get_or_insert(t);
            }
            // A v1 that is not hex can never match; it is not worth refusing
            // the header for, since another v1 may.
            "v1" => signatures.extend(hex::decode(value).ok()),
            // v0 and future schemes are ignored, as the processor documents.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if signatures.is_empty() && !header.contains("v1=") {
        return Err(SignatureError::Malformed("no v1= signature"));
    }
    Ok(ParsedHeader {
        timestamp,
        signatures,
    })
}

/// Checks the header against the raw body. `now` is unix seconds.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[String],
    now: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let parsed = parse_header(header)?;
    let age = now - parsed.timestamp;
    if age.abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::OutsideTolerance { age_seconds: age });
    }
    let signed_prefix = format!("{}.", parsed.timestamp);
    for secret in secrets {
        for candidate in &parsed.signatures {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                continue;
            };
            mac.update(signed_prefix.as_bytes());
            mac.update(body);
            // verify_slice compares in constant time.
            if mac.verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::NoMatch)
}

/// The header value the processor would send; for the simulator and tests.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let hex = signature_hex(body, secret, timestamp);
    format!("t={timestamp},v1={hex}")
}

pub fn signature_hex(body: &[u8], secret: &str, timestamp: i64) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(format!("{timestamp}.").as_bytes());
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC accepts keys of any length; this arm cannot be reached.
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn secrets(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn a_correct_signature_passes() {
        let h = sign(b"{}", "whsec_a", NOW);
        assert_eq!(verify(Some(&h), b"{}", &secrets(&["whsec_a"]), NOW), Ok(()));
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let s = secrets(&["whsec_a"]);
        assert_eq!(
            verify(None, b"{}", &s, NOW),
            Err(SignatureError::MissingHeader)
        );
        assert!(matches!(
            verify(Some("garbage"), b"{}", &s, NOW),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some("v1=abcd"), b"{}", &s, NOW),
            Err(SignatureError::Malformed(_))
        ));
        assert!(matches!(
            verify(Some(&format!("t={NOW}")), b"{}", &s, NOW),
            Err(SignatureError::Malformed(_))
        ));
        let h = sign(b"{}", "whsec_other", NOW);
        assert_eq!(
            verify(Some(&h), b"{}", &s, NOW),
            Err(SignatureError::NoMatch)
        );
        let h = sign(b"{}", "whsec_a", NOW);
        assert_eq!(
            verify(Some(&h), b"{ }", &s, NOW),
            Err(SignatureError::NoMatch)
        );
        let h = sign(b"{}", "whsec_a", NOW - 301);
        assert_eq!(
            verify(Some(&h), b"{}", &s, NOW),
            Err(SignatureError::OutsideTolerance { age_seconds: 301 })
        );
    }

    #[test]
    fn rotation_and_several_v1_values_pass_when_one_matches() {
        let good = signature_hex(b"{}", "whsec_new", NOW);
        let header = format!("t={NOW},v1={},v1={good},v0=ignored", "00".repeat(32));
        assert_eq!(
            verify(
                Some(&header),
                b"{}",
                &secrets(&["whsec_old", "whsec_new"]),
                NOW
            ),
            Ok(())
        );
    }
}
