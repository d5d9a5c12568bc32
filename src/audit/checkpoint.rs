//! Signed checkpoints of the hash chain, kept outside the database — the
//! way transparency logs anchor theirs (RFC 6962, C2SP tlog-checkpoint and
//! signed-note). A checkpoint says "the first N sealed events hash to H",
//! signed with an Ed25519 key the database never sees. Whoever can rewrite
//! the database can recompute the chain, but cannot make an old
//! checkpoint's head appear again: `audit verify --checkpoint` then fails.
//!
//! Note format (C2SP signed note):
//!
//! ```text
//! <origin>
//! <number of sealed events>
//! <base64 head hash>
//! position <global position of the last one>
//! time <RFC 3339>
//!
//! — <key name> <base64(key id ‖ Ed25519 signature of the text above the blank line)>
//! ```

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Ed25519 in signed-note key encodings.
const ALGORITHM_ED25519: u8 = 1;
pub const KEY_NAME: &str = "payledger";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "PAYLEDGER_AUDIT_KEY is not set: the path of a key file made by `payledger audit keygen`"
    )]
    NoKey,
    #[error("audit key {path}: {reason}")]
    BadKey { path: String, reason: String },
    #[error("checkpoint {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl From<tokio_postgres::Error> for CheckpointError {
    fn from(e: tokio_postgres::Error) -> Self {
        CheckpointError::Store(e.into())
    }
}

/// The 4-byte key id of signed notes: SHA-256(name ‖ "\n" ‖ alg ‖ public key).
fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALGORITHM_ED25519]);
    h.update(public.to_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A new signing key as one line:
/// `PRIVATE+KEY+payledger+<key id>+<base64(alg ‖ seed)>`.
pub fn keygen() -> String {
    let seed: [u8; 32] = rand::random();
    let key = SigningKey::from_bytes(&seed);
    let id = key_id(KEY_NAME, &key.verifying_key());
    let mut bytes = vec![ALGORITHM_ED25519];
    bytes.extend_from_slice(&seed);
    format!(
        "PRIVATE+KEY+{KEY_NAME}+{}+{}",
        hex::encode(id),
        B64.encode(bytes)
    )
}

/// The verifier key line of a signing key: `payledger+<key id>+<base64(alg ‖ public)>`.
pub fn verifier_line(key: &SigningKey) -> String {
    let public = key.verifying_key();
    let mut bytes = vec![ALGORITHM_ED25519];
    bytes.extend_from_slice(&public.to_bytes());
    format!(
        "{KEY_NAME}+{}+{}",
        hex::encode(key_id(KEY_NAME, &public)),
        B64.encode(bytes)
    )
}

/// What a key file holds: a signing key, or only a verifier key (an
/// auditor needs no more to check checkpoints).
pub enum AuditKey {
    Signing(SigningKey),
    Verifying(VerifyingKey),
}

/// Never prints key material.
impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditKey::Signing(_) => f.write_str("AuditKey::Signing(..)"),
            AuditKey::Verifying(_) => f.write_str("AuditKey::Verifying(..)"),
        }
    }
}

impl AuditKey {
    pub fn verifying(&self) -> VerifyingKey {
        match self {
            AuditKey::Signing(k) => k.verifying_key(),
            AuditKey::Verifying(k) => *k,
        }
    }
}

pub fn parse_key(text: &str) -> Result<AuditKey, String> {
    let line = text.trim();
    let (private, rest) = match line.strip_prefix("PRIVATE+KEY+") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    // Base64 may hold '+': the name and the hex id never do.
    let parts: Vec<&str> = rest.splitn(3, '+').collect();
    let [name, _id, material] = parts.as_slice() else {
        return Err("expected NAME+KEYID+BASE64 (as `payledger audit keygen` prints)".into());
    };
    let bytes = B64
        .decode(material)
        .map_err(|e| format!("the key is not base64: {e}"))?;
    let Some((&ALGORITHM_ED25519, key)) = bytes.split_first() else {
        return Err("not an Ed25519 key".into());
    };
    let key: [u8; 32] = key
        .try_into()
        .map_err(|_| "an Ed25519 key is 32 bytes".to_string())?;
    if *name != KEY_NAME {
        return Err(format!("the key is named {name:?}, not {KEY_NAME:?}"));
    }
    if private {
        Ok(AuditKey::Signing(SigningKey::from_bytes(&key)))
    } else {
        VerifyingKey::from_bytes(&key)
            .map(AuditKey::Verifying)
            .map_err(|e| format!("not a valid Ed25519 public key: {e}"))
    }
}

/// `PAYLEDGER_AUDIT_KEY`: the path of the key file.
pub fn key_from_env() -> Result<AuditKey, CheckpointError> {
    let path = crate::config::var("PAYLEDGER_AUDIT_KEY").ok_or(CheckpointError::NoKey)?;
    let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError::BadKey {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    parse_key(&text).map_err(|reason| CheckpointError::BadKey { path, reason })
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Checkpoint {
    pub origin: String,
    /// Sealed events covered: the chain links 1..=size.
    pub size: i64,
    pub head: String,
    pub position: i64,
    pub time: DateTime<Utc>,
}

impl Checkpoint {
    fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\nposition {}\ntime {}\n",
            self.origin,
            self.size,
            self.head,
            self.position,
            self.time.to_rfc3339()
        )
    }

    pub fn sign(&self, key: &SigningKey) -> String {
        let body = self.body();
        let signature = key.sign(body.as_bytes());
        let mut blob = key_id(KEY_NAME, &key.verifying_key()).to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n— {KEY_NAME} {}\n", B64.encode(blob))
    }
}

/// Parses a note and checks its signature; `Err` says what is wrong.
pub fn open_note(text: &str, key: &VerifyingKey) -> Result<Checkpoint, String> {
    let (body, signatures) = text
        .split_once("\n\n")
        .ok_or("not a signed note (no blank line before the signature)")?;
    let body = format!("{body}\n");
    let want_id = key_id(KEY_NAME, key);
    let signed = signatures.lines().any(|line| {
        let Some(blob) = line
            .strip_prefix(&format!("— {KEY_NAME} "))
            .and_then(|b| B64.decode(b.trim()).ok())
        else {
            return false;
        };
        let Some((id, sig)) = blob.split_at_checked(4) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig) else {
            return false;
        };
        id == want_id
            && key
                .verify(body.as_bytes(), &Signature::from_bytes(&sig))
                .is_ok()
    });
    if !signed {
        return Err(
            "no valid signature by this audit key (altered, or signed by another key)".into(),
        );
    }
    let lines: Vec<&str> = body.lines().collect();
    let [origin, size, head, position, time] = lines.as_slice() else {
        return Err("the note does not have the five lines of a payledger checkpoint".into());
    };
    let number = |s: &str, what: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("{what} {s:?} is not a number"))
    };
    Ok(Checkpoint {
        origin: origin.to_string(),
        size: number(size, "size")?,
        head: head.to_string(),
        position: number(position.strip_prefix("position ").unwrap_or(""), "position")?,
        time: time
            .strip_prefix("time ")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or("the time line is not RFC 3339")?,
    })
}

/// The chain's head now: how many events are sealed and their last hash.
pub async fn current(
    pool: &Pool,
    origin: &str,
    now: DateTime<Utc>,
) -> Result<Checkpoint, CheckpointError> {
    let client = pool.get().await.map_err(crate::store::StoreError::from)?;
    let row = client
        .query_opt(
            "SELECT seq, position, hash FROM event_chain ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?;
    let (size, position, hash) = match row {
        Some(r) => (
            r.get::<_, i64>(0),
            r.get::<_, i64>(1),
            r.get::<_, Vec<u8>>(2),
        ),
        None => (0, 0, vec![0u8; 32]),
    };
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        head: B64.encode(hash),
        position,
        time: now,
    })
}

/// Whether the log still holds what `cp` saw: at least `size` sealed
/// events, and link `size` still hashing to `head`. (That the links hash
/// the events themselves is what `verify_chain` checks.)
pub async fn check_against_log(
    pool: &Pool,
    cp: &Checkpoint,
) -> Result<Result<(), String>, CheckpointError> {
    if cp.size == 0 {
        return Ok(Ok(()));
    }
    let client = pool.get().await.map_err(crate::store::StoreError::from)?;
    let sealed: i64 = client
        .query_one("SELECT COALESCE(max(seq), 0) FROM event_chain", &[])
        .await?
        .get(0);
    if sealed < cp.size {
        return Ok(Err(format!(
            "the log is shorter than the checkpoint: {sealed} sealed events, the checkpoint of {} saw {}",
            cp.time.to_rfc3339(),
            cp.size
        )));
    }
    let hash: Vec<u8> = client
        .query_one("SELECT hash FROM event_chain WHERE seq = $1", &[&cp.size])
        .await?
        .get(0);
    if B64.encode(&hash) != cp.head {
        return Ok(Err(format!(
            "the first {} events no longer hash to the checkpoint's head (checkpoint {}, log {}): history was rewritten",
            cp.size,
            cp.head,
            B64.encode(&hash)
        )));
    }
    Ok(Ok(()))
}

/// `PAYLEDGER_AUDIT_ORIGIN`, or `payledger/<database>`.
pub fn origin(database_name: &str) -> String {
    crate::config::var("PAYLEDGER_AUDIT_ORIGIN")
        .unwrap_or_else(|| format!("payledger/{database_name}"))
}

/// Writes a signed checkpoint into `dir` as `checkpoint-<size>-<time>.txt`.
pub async fn write_checkpoint(
    pool: &Pool,
    key: &SigningKey,
    origin: &str,
    dir: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<(std::path::PathBuf, Checkpoint), CheckpointError> {
    let cp = current(pool, origin, now).await?;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!(
        "checkpoint-{}-{}.txt",
        cp.size,
        now.format("%Y%m%dT%H%M%SZ")
    ));
    std::fs::write(&path, cp.sign(key))?;
    Ok((path, cp))
}

/// `audit verify --checkpoint FILE…`: prints one line per checkpoint and
/// returns how many failed (unreadable, badly signed, or no longer in the
/// log).
pub async fn verify_files(
    pool: &Pool,
    files: &[std::path::PathBuf],
) -> Result<usize, CheckpointError> {
    let key = key_from_env()?.verifying();
    let mut failed = 0;
    for file in files {
        let path = file.display().to_string();
        let outcome = match std::fs::read_to_string(file) {
            Err(e) => Err(e.to_string()),
            Ok(text) => match open_note(&text, &key) {
                Err(e) => Err(e),
                Ok(cp) => check_against_log(pool, &cp).await?.map(|()| cp),
            },
        };
        match outcome {
            Ok(cp) => println!(
                "checkpoint {path}: OK ({} events as of {}, still in the log)",
                cp.size,
                cp.time.to_rfc3339()
            ),
            Err(reason) => {
                failed += 1;
                println!("checkpoint {path}: FAILED: {reason}");
            }
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        match parse_key(&keygen()).unwrap() {
            AuditKey::Signing(k) => k,
            AuditKey::Verifying(_) => panic!("keygen made a verifier key"),
        }
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            origin: "payledger/test".into(),
            size: 42,
            head: B64.encode([7u8; 32]),
            position: 99,
            time: DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn a_signed_checkpoint_opens_with_its_key_and_the_verifier_line() {
        let k = key();
        let note = sample().sign(&k);
        assert_eq!(open_note(&note, &k.verifying_key()), Ok(sample()));
        let AuditKey::Verifying(v) = parse_key(&verifier_line(&k)).unwrap() else {
            panic!("the verifier line parsed as a signing key");
        };
        assert_eq!(open_note(&note, &v), Ok(sample()));
    }

    #[test]
    fn an_altered_note_or_another_key_fails() {
        let k = key();
        let note = sample().sign(&k);
        let altered = note.replacen("\n42\n", "\n41\n", 1);
        assert!(open_note(&altered, &k.verifying_key()).is_err());
        assert!(open_note(&note, &key().verifying_key()).is_err());
        assert!(open_note("garbage", &k.verifying_key()).is_err());
    }

    #[test]
    fn every_generated_key_parses_whatever_its_base64_holds() {
        for _ in 0..200 {
            assert!(matches!(parse_key(&keygen()), Ok(AuditKey::Signing(_))));
            let AuditKey::Signing(k) = parse_key(&keygen()).unwrap() else {
                unreachable!()
            };
            assert!(matches!(
                parse_key(&verifier_line(&k)),
                Ok(AuditKey::Verifying(_))
            ));
        }
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        assert!(parse_key("nonsense")
            .unwrap_err()
            .contains("NAME+KEYID+BASE64"));
        assert!(parse_key("PRIVATE+KEY+payledger+00+!!!")
            .unwrap_err()
            .contains("base64"));
    }
}
