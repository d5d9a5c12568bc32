//! The processor's API over reqwest (rustls): list with cursor pagination,
//! retrieve, create sessions and refunds. Retries 429, 5xx, timeouts and
//! connection failures with exponential backoff; anything else is a typed
//! error that names the request.

use super::stripe::{Charge, CheckoutSession, Dispute, Event, List, Refund};
use payledger_stripe::billing::{Invoice, Subscription};
use serde::de::DeserializeOwned;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("{request}: the processor kept failing ({last}) after {attempts} attempts")]
    Unavailable {
        request: String,
        attempts: u32,
        last: String,
    },
    #[error("{request}: the processor refused it ({status}): {message}")]
    Refused {
        request: String,
        status: u16,
        message: String,
    },
    #[error("{request}: the processor's answer could not be read: {reason}")]
    Decode { request: String, reason: String },
    #[error("invalid processor request: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone)]
pub struct ClientRetry {
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl Default for ClientRetry {
    fn default() -> Self {
        ClientRetry {
            max_attempts: 6,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
        }
    }
}

/// A window and cursor for list endpoints.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub created_gte: Option<i64>,
    pub created_lte: Option<i64>,
    pub limit: Option<u32>,
    /// Extra filters, e.g. `("delivery_success", "false")`, `("type", ...)`.
    pub extra: Vec<(String, String)>,
}

impl ListFilter {
    fn query(&self, starting_after: Option<&str>) -> Vec<(String, String)> {
        let mut q = vec![("limit".to_string(), self.limit.unwrap_or(100).to_string())];
        if let Some(t) = self.created_gte {
            q.push(("created[gte]".into(), t.to_string()));
        }
        if let Some(t) = self.created_lte {
            q.push(("created[lte]".into(), t.to_string()));
        }
        if let Some(cursor) = starting_after {
            q.push(("starting_after".into(), cursor.to_string()));
        }
        q.extend(self.extra.iter().cloned());
        q
    }
}

/// What a checkout asks the processor for.
#[derive(Debug, Clone)]
pub struct NewCheckoutSession {
    pub checkout_reference: String,
    pub customer_email: String,
    pub product_name: String,
    pub amount: i64,
    pub currency: String,
    /// With `{CHECKOUT_SESSION_ID}` where the processor puts the session id.
    pub success_url: String,
    pub cancel_url: String,
    /// A renewing plan's recurring price: the session opens in subscription
    /// mode and the processor bills each period itself.
    pub recurring_price_id: Option<String>,
}

#[derive(Clone)]
pub struct ProcessorClient {
    http: reqwest::Client,
    base: url::Url,
    api_key: String,
    retry: ClientRetry,
}

impl ProcessorClient {
    pub fn new(base: url::Url, api_key: impl Into<String>, retry: ClientRetry) -> Self {
        ProcessorClient {
            http: reqwest::Client::new(),
            base,
            api_key: api_key.into(),
            retry,
        }
    }

    fn url(&self, path: &str) -> Result<url::Url, ProcessorError> {
        self.base
            .join(path)
            .map_err(|e| ProcessorError::Invalid(format!("{path}: {e}")))
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request_name: &str,
        build: impl Fn() -> Result<reqwest::RequestBuilder, ProcessorError>,
    ) -> Result<T, ProcessorError> {
        let mut backoff = self.retry.first_backoff;
        let mut last = String::new();
        for attempt in 1..=self.retry.max_attempts {
            let response = build()?
                .bearer_auth(&self.api_key)
                .timeout(self.retry.request_timeout)
                .send()
                .await;
            match response {
                Ok(r) if r.status().is_success() => {
                    let bytes = r.bytes().await.map_err(|e| ProcessorError::Decode {
                        request: request_name.into(),
                        reason: e.to_string(),
                    })?;
                    return serde_json::from_slice(&bytes).map_err(|e| ProcessorError::Decode {
                        request: request_name.into(),
                        reason: e.to_string(),
                    });
                }
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
                    last = format!("HTTP {}", r.status().as_u16());
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    let message = body["error"]["message"]
                        .as_str()
                        .unwrap_or("no message")
                        .to_string();
                    return Err(ProcessorError::Refused {
                        request: request_name.into(),
                        status,
                        message,
                    });
                }
                Err(e) => {
                    last = if e.is_timeout() {
                        "timeout".into()
                    } else {
                        format!("connection: {e}")
                    }
                }
            }
            tracing::debug!(request = request_name, attempt, %last, "processor request failed; backing off");
            if attempt < self.retry.max_attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
        }
        Err(ProcessorError::Unavailable {
            request: request_name.into(),
            attempts: self.retry.max_attempts,
            last,
        })
    }

    async fn list_page<T: DeserializeOwned>(
        &self,
        path: &str,
        filter: &ListFilter,
        starting_after: Option<&str>,
    ) -> Result<List<T>, ProcessorError> {
        let url = self.url(path)?;
        let query = filter.query(starting_after);
        self.send(&format!("GET {path}"), || {
            Ok(self.http.get(url.clone()).query(&query))
        })
        .await
    }

    pub async fn retrieve_session(&self, id: &str) -> Result<CheckoutSession, ProcessorError> {
        let path = format!("/v1/checkout/sessions/{id}");
        let url = self.url(&path)?;
        self.send(&format!("GET {path}"), || Ok(self.http.get(url.clone())))
            .await
    }

    pub async fn create_checkout_session(
        &self,
        new: &NewCheckoutSession,
    ) -> Result<CheckoutSession, ProcessorError> {
        let url = self.url("/v1/checkout/sessions")?;
        let key = super::stripe::CHECKOUT_REFERENCE_KEY;
        let mut form = vec![
            (
                "client_reference_id".to_string(),
                new.checkout_reference.clone(),
            ),
            ("customer_email".into(), new.customer_email.clone()),
            ("success_url".into(), new.success_url.clone()),
            ("cancel_url".into(), new.cancel_url.clone()),
            ("line_items[0][quantity]".into(), "1".into()),
            (format!("metadata[{key}]"), new.checkout_reference.clone()),
        ];
        if let Some(price) = &new.recurring_price_id {
            // The subscription's metadata is copied onto each of its
            // invoices: the first one names the checkout it pays.
            form.extend([
                ("mode".to_string(), "subscription".to_string()),
                ("line_items[0][price]".into(), price.clone()),
                (
                    format!("subscription_data[metadata][{key}]"),
                    new.checkout_reference.clone(),
                ),
            ]);
        } else {
            form.extend([
                ("mode".to_string(), "payment".to_string()),
                (
                    "line_items[0][price_data][currency]".into(),
                    new.currency.clone(),
                ),
                (
                    "line_items[0][price_data][unit_amount]".into(),
                    new.amount.to_string(),
                ),
                (
                    "line_items[0][price_data][product_data][name]".into(),
                    new.product_name.clone(),
                ),
                (
                    format!("payment_intent_data[metadata][{key}]"),
                    new.checkout_reference.clone(),
                ),
            ]);
        }
        // The checkout id makes a retried create return the same session.
        let idempotency = format!("checkout-session-{}", new.checkout_reference);
        self.send("POST /v1/checkout/sessions", || {
            Ok(self
                .http
                .post(url.clone())
                .header("Idempotency-Key", &idempotency)
                .form(&form))
        })
        .await
    }

    /// Refunds a payment (its payment intent or charge id). The key makes a
    /// retry — or a second person running the same command — refund once.
    pub async fn create_refund(
        &self,
        payment_id: &str,
        amount: Option<i64>,
        reason: Option<&str>,
        idempotency_key: &str,
    ) -> Result<Refund, ProcessorError> {
        let url = self.url("/v1/refunds")?;
        let target = if payment_id.starts_with("ch_") {
            "charge"
        } else {
            "payment_intent"
        };
        let mut form = vec![(target.to_string(), payment_id.to_string())];
        if let Some(a) = amount {
            form.push(("amount".into(), a.to_string()));
        }
        if let Some(r) = reason {
            form.push(("reason".into(), r.to_string()));
        }
        self.send("POST /v1/refunds", || {
            Ok(self
                .http
                .post(url.clone())
                .header("Idempotency-Key", idempotency_key)
                .form(&form))
        })
        .await
    }

    pub fn checkout_sessions(&self, filter: ListFilter) -> Pages<'_, CheckoutSession> {
        Pages::new(self, "/v1/checkout/sessions", filter, |s| s.id.clone())
    }

    pub fn charges(&self, filter: ListFilter) -> Pages<'_, Charge> {
        Pages::new(self, "/v1/charges", filter, |c| c.id.clone())
    }

    pub fn refunds(&self, filter: ListFilter) -> Pages<'_, Refund> {
        Pages::new(self, "/v1/refunds", filter, |r| r.id.clone())
    }

    pub fn disputes(&self, filter: ListFilter) -> Pages<'_, Dispute> {
        Pages::new(self, "/v1/disputes", filter, |d| d.id.clone())
    }

    pub fn events(&self, filter: ListFilter) -> Pages<'_, Event> {
        Pages::new(self, "/v1/events", filter, |e| e.id.clone())
    }

    /// Subscriptions; add `("status", "all")` to `filter.extra` to include
    /// cancelled ones (the processor leaves them out by default).
    pub fn subscriptions(&self, filter: ListFilter) -> Pages<'_, Subscription> {
        Pages::new(self, "/v1/subscriptions", filter, |s| s.id.clone())
    }

    pub fn invoices(&self, filter: ListFilter) -> Pages<'_, Invoice> {
        Pages::new(self, "/v1/invoices", filter, |i| i.id.clone())
    }

    /// Cancels a subscription: at the end of its paid period, or now. The
    /// key makes a retry — or a second person — cancel once.
    pub async fn cancel_subscription(
        &self,
        id: &str,
        now: bool,
        idempotency_key: &str,
    ) -> Result<Subscription, ProcessorError> {
        let path = format!("/v1/subscriptions/{id}");
        let url = self.url(&path)?;
        if now {
            return self
                .send(&format!("DELETE {path}"), || {
                    Ok(self
                        .http
                        .delete(url.clone())
                        .header("Idempotency-Key", idempotency_key))
                })
                .await;
        }
        self.send(&format!("POST {path}"), || {
            Ok(self
                .http
                .post(url.clone())
                .header("Idempotency-Key", idempotency_key)
                .form(&[("cancel_at_period_end", "true")]))
        })
        .await
    }

    /// A page of the processor's where the customer updates the card (or
    /// cancels); its URL is good for a few minutes, so it is made on click.
    pub async fn create_billing_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<String, ProcessorError> {
        let url = self.url("/v1/billing_portal/sessions")?;
        let answer: serde_json::Value = self
            .send("POST /v1/billing_portal/sessions", || {
                Ok(self
                    .http
                    .post(url.clone())
                    .form(&[("customer", customer), ("return_url", return_url)]))
            })
            .await?;
        answer["url"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| ProcessorError::Decode {
                request: "POST /v1/billing_portal/sessions".into(),
                reason: "no url in the answer".into(),
            })
    }

    pub async fn retrieve_subscription(&self, id: &str) -> Result<Subscription, ProcessorError> {
        let path = format!("/v1/subscriptions/{id}");
        let url = self.url(&path)?;
        self.send(&format!("GET {path}"), || Ok(self.http.get(url.clone())))
            .await
    }
}

/// Walks a list endpoint page by page; memory stays one page whatever the
/// list's length.
pub struct Pages<'a, T> {
    client: &'a ProcessorClient,
    path: &'static str,
    filter: ListFilter,
    id_of: fn(&T) -> String,
    cursor: Option<String>,
    done: bool,
}

impl<'a, T: DeserializeOwned> Pages<'a, T> {
    fn new(
        client: &'a ProcessorClient,
        path: &'static str,
        filter: ListFilter,
        id_of: fn(&T) -> String,
    ) -> Self {
        Pages {
            client,
            path,
            filter,
            id_of,
            cursor: None,
            done: false,
        }
    }

    /// The next page, or `None` after the last one.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ProcessorError> {
        if self.done {
            return Ok(None);
        }
        let page: List<T> = self
            .client
            .list_page(self.path, &self.filter, self.cursor.as_deref())
            .await?;
        self.done = !page.has_more || page.data.is_empty();
        self.cursor = page.data.last().map(self.id_of);
        Ok(Some(page.data))
    }

    /// Every item; for small lists and tests.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ProcessorError> {
        let mut all = vec![];
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}
