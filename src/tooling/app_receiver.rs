//! A stand-in for the product's own application (spec §13), for the demo
//! and `bench app-webhooks`: it verifies each message as an application
//! would, keeps what it was told, and answers 204.

use payledger::reactors::app_webhooks::signing;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Told {
    pub id: String,
    pub message_type: String,
    pub email: String,
    pub version: i64,
    pub verified: bool,
    pub at: Instant,
}

pub struct AppReceiver {
    pub url: String,
    pub secret: String,
    pub told: Arc<Mutex<Vec<Told>>>,
}

impl AppReceiver {
    /// Listens on a free loopback port; with `print`, says each verified
    /// message as the application would log it.
    pub async fn start(print: bool) -> anyhow::Result<AppReceiver> {
        let secret = signing::new_secret();
        let told: Arc<Mutex<Vec<Told>>> = Arc::default();
        let (key, log) = (secret.clone(), told.clone());
        let app = axum::Router::new().route(
            "/payledger",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (key, log) = (key.clone(), log.clone());
                async move {
                    let told = receive(&key, &headers, &body);
                    if print {
                        let mark = if told.verified {
                            "verified"
                        } else {
                            "NOT VERIFIED"
                        };
                        println!(
                            "  [app] {mark} {}: {} {} (version {})",
                            told.id, told.message_type, told.email, told.version
                        );
                    }
                    let answer = if told.verified {
                        axum::http::StatusCode::NO_CONTENT
                    } else {
                        axum::http::StatusCode::BAD_REQUEST
                    };
                    log.lock().unwrap_or_else(|p| p.into_inner()).push(told);
                    answer
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/payledger", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(AppReceiver { url, secret, told })
    }

    pub fn told(&self) -> Vec<Told> {
        self.told.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a verified message of `message_type` about `email` came.
    pub fn was_told(&self, message_type: &str, email: &str) -> bool {
        self.told()
            .iter()
            .any(|t| t.verified && t.message_type == message_type && t.email == email)
    }

    /// Waits up to `secs` for `was_told`.
    pub async fn wait_told(&self, message_type: &str, email: &str, secs: u64) -> bool {
        let deadline = Instant::now() + std::time::Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.was_told(message_type, email) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.was_told(message_type, email)
    }
}

fn receive(secret: &str, headers: &axum::http::HeaderMap, body: &str) -> Told {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let id = header("webhook-id");
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
    // Freshness is not checked against this machine's clock: in the demo
    // payledger follows the simulator's, a year ahead after step 5.
    let verified = signing::verify(
        secret,
        &id,
        timestamp,
        body,
        &header("webhook-signature"),
        timestamp,
    )
    .is_ok();
    let message: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Told {
        id,
        message_type: text(&message["type"]),
        email: text(&message["data"]["email"]),
        version: message["data"]["version"].as_i64().unwrap_or(0),
        verified,
        at: Instant::now(),
    }
}
