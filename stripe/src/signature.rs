//! `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` over `"<t>.<raw body>"`,
//! HMAC-SHA256, any configured secret, any `v1`, within the tolerance.
//!
//! The work is bounded before any MAC is computed: a header longer than
//! [`MAX_HEADER_BYTES`] or with more than [`MAX_V1_ENTRIES`] signatures is
//! refused, and each secret's MAC is computed once and compared with every
//! entry — so a header cannot make the body be hashed thousands of times.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle_compare::constant_time_eq;

pub const TOLERANCE_SECONDS: i64 = 300;
/// The processor sends one `t`, one `v1` per active secret and maybe a `v0`:
/// a few hundred bytes. Real headers are far below both caps.
pub const MAX_HEADER_BYTES: usize = 4096;
pub const MAX_V1_ENTRIES: usize = 8;

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
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed("header longer than 4096 bytes"));
    }
    let mut timestamp = None;
    let mut signatures = vec![];
    let mut v1_entries = 0usize;
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
            "v1" => {
                v1_entries += 1;
                if v1_entries > MAX_V1_ENTRIES {
                    return Err(SignatureError::Malformed("more than 8 v1 signatures"));
                }
                signatures.extend(hex::decode(value).ok());
            }
            // v0 and future schemes are ignored, as the processor documents.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    if v1_entries == 0 {
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
    // Checked: a timestamp near i64::MIN must not wrap into the tolerance.
    let age = now.saturating_sub(parsed.timestamp);
    if age.unsigned_abs() > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance { age_seconds: age });
    }
    let signed_prefix = format!("{}.", parsed.timestamp);
    for secret in secrets {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
            continue;
        };
        mac.update(signed_prefix.as_bytes());
        mac.update(body);
        let expected = mac.finalize().into_bytes();
        let mut matched = false;
        for candidate in &parsed.signatures {
            matched |= constant_time_eq(&expected, candidate);
        }
        if matched {
            return Ok(());
        }
    }
    Err(SignatureError::NoMatch)
}

mod subtle_compare {
    /// Compares without an early exit on the first differing byte, so the
    /// time taken says nothing about how much of a guess was right.
    pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        let mut diff = 0u8;
        for (x, y) in a.iter().zip(b) {
            diff |= x ^ y;
        }
        std::hint::black_box(diff) == 0
    }
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

    #[test]
    fn a_timestamp_near_i64_min_is_outside_the_tolerance_not_wrapped_into_it() {
        let t = NOW.wrapping_sub(i64::MAX).wrapping_sub(1);
        let h = sign(b"{}", "whsec_a", t);
        assert!(matches!(
            verify(Some(&h), b"{}", &secrets(&["whsec_a"]), NOW),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        let h = sign(b"{}", "whsec_a", i64::MIN);
        assert!(matches!(
            verify(Some(&h), b"{}", &secrets(&["whsec_a"]), NOW),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn a_header_with_too_many_entries_or_bytes_is_refused_before_any_mac() {
        let s = secrets(&["whsec_a"]);
        let good = signature_hex(b"{}", "whsec_a", NOW);
        let nine = format!("t={NOW},{}v1={good}", "v1=00,".repeat(8));
        assert_eq!(
            verify(Some(&nine), b"{}", &s, NOW),
            Err(SignatureError::Malformed("more than 8 v1 signatures"))
        );
        let eight = format!("t={NOW},{}v1={good}", "v1=00,".repeat(7));
        assert_eq!(verify(Some(&eight), b"{}", &s, NOW), Ok(()));
        let long = format!("t={NOW},v1={good},v0={}", "a".repeat(5000));
        assert!(matches!(
            verify(Some(&long), b"{}", &s, NOW),
            Err(SignatureError::Malformed(_))
        ));
    }
}
