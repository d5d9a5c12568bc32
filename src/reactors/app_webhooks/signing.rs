//! Standard Webhooks signatures (spec §13): `v1,<base64 HMAC-SHA256 of
//! "<id>.<timestamp>.<body>">`, keyed by the base64 part of `whsec_…`, so
//! the application verifies with an off-the-shelf library.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", B64.encode(key))
}

/// What the log keeps of a secret: enough to tell secrets apart, nothing
/// that signs.
pub fn fingerprint(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))[..16].to_string()
}

/// Whether `secret` has the shape the Standard Webhooks libraries accept.
pub fn valid_secret(secret: &str) -> Result<(), String> {
    let key = secret
        .strip_prefix("whsec_")
        .ok_or("a secret starts with whsec_")?;
    let bytes = B64
        .decode(key)
        .map_err(|e| format!("the part after whsec_ is not base64: {e}"))?;
    if bytes.len() < 24 {
        return Err(format!(
            "the secret has {} bytes; at least 24 are needed",
            bytes.len()
        ));
    }
    Ok(())
}

/// One `v1,<signature>` per secret, space-separated (two during a
/// rotation); secrets that cannot sign are skipped.
pub fn signature_header(secrets: &[String], id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .filter_map(|s| sign(s, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

fn sign(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    let key = B64.decode(secret.strip_prefix("whsec_")?).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!("v1,{}", B64.encode(mac.finalize().into_bytes())))
}

/// How far a message's `webhook-timestamp` may be from now (the Standard
/// Webhooks libraries' tolerance), so a captured message cannot be replayed
/// later.
pub const TIMESTAMP_TOLERANCE_SECONDS: i64 = 300;

/// Why a message was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum Unverified {
    NoSignature,
    StaleTimestamp,
    BadSecret,
}

/// What an application does on receipt: some `v1,` signature in `header`
/// matches under `secret` (compared in constant time) and the timestamp
/// is within the tolerance of `now`.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &str,
    header: &str,
    now: i64,
) -> Result<(), Unverified> {
    if (now - timestamp).abs() > TIMESTAMP_TOLERANCE_SECONDS {
        return Err(Unverified::StaleTimestamp);
    }
    let key = secret
        .strip_prefix("whsec_")
        .and_then(|k| B64.decode(k).ok())
        .ok_or(Unverified::BadSecret)?;
    let matches = |signature: &str| {
        let Ok(expected) = B64.decode(signature) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key) else {
            return false;
        };
        mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
        mac.verify_slice(&expected).is_ok()
    };
    header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(matches)
        .then_some(())
        .ok_or(Unverified::NoSignature)
}

/// The message id: the same for a change and an endpoint on every retry
/// and replay.
pub fn message_id(endpoint_id: &str, email: &str, version: i64) -> String {
    let digest = Sha256::digest(format!("{endpoint_id}|{email}|{version}").as_bytes());
    format!("msg_{}", &hex::encode(digest)[..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_example_signature_is_reproduced() {
        // The example of the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let header = signature_header(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn verify_accepts_either_signature_of_a_rotation_and_refuses_tampering() {
        let (old, new) = (new_secret(), new_secret());
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1000, "{}");
        assert_eq!(verify(&old, "msg_1", 1000, "{}", &header, 1010), Ok(()));
        assert_eq!(verify(&new, "msg_1", 1000, "{}", &header, 1010), Ok(()));
        assert_eq!(
            verify(&new_secret(), "msg_1", 1000, "{}", &header, 1010),
            Err(Unverified::NoSignature)
        );
        assert_eq!(
            verify(&old, "msg_1", 1000, "{ }", &header, 1010),
            Err(Unverified::NoSignature)
        );
        assert_eq!(
            verify(&old, "msg_1", 1000, "{}", &header, 2000),
            Err(Unverified::StaleTimestamp)
        );
    }

    #[test]
    fn a_secret_too_short_or_without_its_prefix_is_refused() {
        assert!(valid_secret(&new_secret()).is_ok());
        assert!(valid_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(valid_secret("whsec_c2hvcnQ=").is_err());
    }
}
