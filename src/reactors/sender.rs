//! The email sender: claims due outbox rows (`FOR UPDATE SKIP LOCKED`, with
//! a lease a crashed sender's claim outlives by at most its length), renders
//! and sends them, and records `EmailSent` / `EmailFailed` in the same
//! transaction that settles the claim. A duplicate is possible only when a
//! process dies between the SMTP server's acceptance and that commit — for
//! each of the (at most `concurrency`) emails it had in flight then.

use super::mail::{Mailer, SendFailure};
use crate::plans::Plans;
use crate::store::{ExpectedVersion, PgEventStore, StoreError, StreamAppend};
use askama::Template;
use chrono::{DateTime, Duration, Utc};
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use payledger_events::{
    Actor, DomainEvent, EmailFailed, EmailSent, EventData, Metadata, Money, StreamId,
};
use payledger_projections::read::{customer_status, ReadModels};
use payledger_projections::states::EmailStatus;
use rand::Rng;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_postgres::Row;

#[derive(Clone)]
pub struct SenderConfig {
    pub worker_id: String,
    pub batch: i64,
    /// How often, at most, the outbox is compared with the sender's
    /// deliveries while due ones are known (always when they run short).
    pub sync_every: std::time::Duration,
    pub sync: SyncClock,
    /// Recipients served at once within a claimed batch (one recipient's
    /// messages go one after another, in the order they fell due).
    pub concurrency: usize,
    pub lease: Duration,
    pub max_attempts: i32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    pub poll: std::time::Duration,
    pub public_url: String,
    pub support_email: String,
    pub plans: Plans,
    /// How long "we're confirming" is honest (the pages' window).
    pub pending_window: Duration,
    /// PAYLEDGER_TIMEZONE: the zone of the dates emails show.
    pub zone: chrono_tz::Tz,
}

impl Default for SenderConfig {
    fn default() -> Self {
        SenderConfig {
            worker_id: format!("sender-{}", uuid::Uuid::new_v4().simple()),
            batch: 32,
            sync_every: std::time::Duration::from_secs(2),
            sync: SyncClock::default(),
            concurrency: 4,
            lease: Duration::seconds(60),
            max_attempts: 8,
            first_backoff: Duration::seconds(5),
            max_backoff: Duration::minutes(10),
            poll: std::time::Duration::from_millis(500),
            public_url: "http://127.0.0.1:8080".into(),
            support_email: "support@localhost".into(),
            plans: Plans::default(),
            pending_window: Duration::minutes(3),
            zone: chrono_tz::UTC,
        }
    }
}

/// When the sender last compared the outbox with its deliveries; shared by
/// the clones of one sender's configuration.
#[derive(Clone, Default)]
pub struct SyncClock(std::sync::Arc<std::sync::Mutex<Option<std::time::Instant>>>);

impl SyncClock {
    fn due(&self, every: std::time::Duration) -> bool {
        let last = *self.0.lock().unwrap_or_else(|p| p.into_inner());
        last.is_none_or(|t| t.elapsed() >= every)
    }

    fn done(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now());
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    pub sent: u32,
    pub failed: u32,
    pub given_up: u32,
    /// Not written yet: the read model it is written from is behind.
    pub deferred: u32,
}

struct Link {
    reference: String,
    summary: String,
    url: String,
}

#[derive(Template)]
#[template(path = "email/body.txt")]
struct TextBody<'a> {
    kind: &'a str,
    plan: &'a str,
    amount: &'a str,
    refund_amount: &'a str,
    access_note: &'a str,
    paid_on: &'a str,
    reference: &'a str,
    period_end: &'a str,
    next_attempt: &'a str,
    status_url: &'a str,
    links: &'a [Link],
    support_email: &'a str,
}

#[derive(Template)]
#[template(path = "email/body.html")]
struct HtmlBody<'a> {
    kind: &'a str,
    plan: &'a str,
    amount: &'a str,
    refund_amount: &'a str,
    access_note: &'a str,
    paid_on: &'a str,
    reference: &'a str,
    period_end: &'a str,
    next_attempt: &'a str,
    status_url: &'a str,
    links: &'a [Link],
    support_email: &'a str,
}

/// Everything an email shows, gathered from the read models.
#[derive(Default)]
pub(super) struct View {
    pub(super) plan: String,
    pub(super) amount: String,
    refund_amount: String,
    /// For a refund: access that goes on from another payment.
    access_note: String,
    pub(super) paid_on: String,
    pub(super) reference: String,
    /// When access ends (or ended, or the paid period runs to).
    pub(super) period_end: String,
    /// A failed renewal: when the processor tries again ("" after the last).
    pub(super) next_attempt: String,
    pub(super) status_url: String,
}

pub(super) const UNKNOWN_AMOUNT: &str = "your payment";
pub(super) const UNKNOWN_DAY: &str = "—";
pub(super) const UNKNOWN_PLAN: &str = "plan";

pub(super) fn money(amount: Option<i64>, currency: Option<String>) -> String {
    Money::from_parts(amount, currency.as_deref())
        .map_or_else(|| UNKNOWN_AMOUNT.into(), |m| m.to_string())
}

pub(super) fn day(d: Option<DateTime<Utc>>, zone: chrono_tz::Tz) -> String {
    d.map(|d| crate::situation::day(d, zone))
        .unwrap_or_else(|| UNKNOWN_DAY.into())
}

/// The fields a message of this kind cannot go without. A receipt that says
/// "your  is active" is worse than none: it is not sent, the failure names
/// what was missing, and support sees it as a discrepancy.
fn missing_fields(kind: &str, view: &View) -> Vec<&'static str> {
    let mut missing = vec![];
    let mut need = |ok: bool, name: &'static str| {
        if !ok {
            missing.push(name);
        }
    };
    match kind {
        "confirmation" | "rescue_confirmation" => {
            need(!view.plan.is_empty() && view.plan != UNKNOWN_PLAN, "plan");
            need(view.amount != UNKNOWN_AMOUNT, "amount");
            need(view.paid_on != UNKNOWN_DAY, "payment date");
            need(view.period_end != UNKNOWN_DAY, "end of access");
            need(!view.reference.is_empty(), "reference");
        }
        "refund_confirmation" => {
            need(
                !view.refund_amount.is_empty() && view.refund_amount != UNKNOWN_AMOUNT,
                "refund amount",
            );
            need(!view.reference.is_empty(), "reference");
        }
        "dispute_notice" | "dispute_won" | "dispute_lost" => {
            need(view.amount != UNKNOWN_AMOUNT, "amount");
            need(!view.reference.is_empty(), "reference");
        }
        "renewal_receipt" | "payment_failed" | "final_notice" => {
            need(view.amount != UNKNOWN_AMOUNT, "amount");
            need(view.period_end != UNKNOWN_DAY, "end of access");
            need(!view.reference.is_empty(), "reference");
        }
        "renewal_reminder" => {
            need(view.amount != UNKNOWN_AMOUNT, "amount");
            need(view.period_end != UNKNOWN_DAY, "renewal date");
        }
        "cancellation_confirmed" | "access_ended" => {
            need(view.period_end != UNKNOWN_DAY, "end of access");
        }
        _ => {}
    }
    missing
}

async fn view_of(
    store: &PgEventStore,
    read: &ReadModels,
    config: &SenderConfig,
    key: &str,
    payment_id: Option<&str>,
) -> Result<View, StoreError> {
    if let Some(view) = super::renewal_view::view_of(store, read, config, key).await? {
        return Ok(view);
    }
    let mut view = View::default();
    let Some(payment_id) = payment_id else {
        return Ok(view);
    };
    if let Some(r) = customer_status::by_payment(read, payment_id).await? {
        view.plan = r
            .plan
            .map(|p| config.plans.get(&p).map(|x| x.name.clone()).unwrap_or(p))
            .unwrap_or_else(|| UNKNOWN_PLAN.into());
        view.amount = money(r.amount, r.currency);
        view.paid_on = day(r.paid_at, config.zone);
        view.period_end = r
            .period_end
            .map(|d| crate::situation::until(d, config.zone))
            .unwrap_or_else(|| UNKNOWN_DAY.into());
        view.status_url = status_url(config, &r.reference);
        view.reference = r.reference;
        if key.starts_with("refund_confirmation:") {
            let other = match &r.email {
                Some(e) => payledger_projections::read::subscriptions::by_email(read, e)
                    .await?
                    .filter(|s| s.grants_access_at(store.clock().now()))
                    .filter(|s| s.payment_id.as_deref() != Some(payment_id)),
                None => None,
            };
            if let Some(s) = other {
                view.access_note = format!(
                    "Your access continues until {}, from your other payment.",
                    crate::situation::until(s.period_end, config.zone)
                );
            }
        }
    }
    if let Some(refund_id) = key.strip_prefix("refund_confirmation:") {
        let id = payledger_events::deterministic_event_id("ChargeRefunded", refund_id);
        if let Some(DomainEvent::ChargeRefunded(r)) = store.event(id).await? {
            view.refund_amount = Money::new(r.amount, r.currency).to_string();
        }
    }
    Ok(view)
}

async fn links_for(
    read: &ReadModels,
    config: &SenderConfig,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Link>, StoreError> {
    let ctx = crate::situation::load::Context {
        plans: &config.plans,
        support_email: &config.support_email,
        now,
        pending_window: config.pending_window,
        zone: config.zone,
    };
    let mut links = vec![];
    for r in customer_status::by_email(read, email).await? {
        // The same situation, and so the same words, as the page it links.
        let (situation, details) = crate::situation::load::situation_of(read, &r, &ctx).await?;
        links.push(Link {
            summary: format!(
                "{} from {}: {}",
                money(r.amount, r.currency.clone()),
                day(Some(r.started_at), config.zone),
                situation.email_line(&details)
            ),
            url: status_url(config, &r.reference),
            reference: r.reference,
        });
    }
    Ok(links)
}

/// The customer's own page for one checkout or payment.
pub(super) fn status_url(config: &SenderConfig, reference: &str) -> String {
    format!(
        "{}/status/{reference}",
        config.public_url.trim_end_matches('/')
    )
}

fn subject(kind: &str, view: &View) -> String {
    match kind {
        "confirmation" => format!("Your receipt: {}, {}", view.plan, view.amount),
        "rescue_confirmation" => format!("Your account is active: receipt for {}", view.amount),
        "refund_confirmation" => format!("Your refund of {}", view.refund_amount),
        "dispute_notice" => format!("Your bank is disputing your payment of {}", view.amount),
        "dispute_won" => format!(
            "The dispute about your payment of {} is settled",
            view.amount
        ),
        "dispute_lost" => format!("Your bank returned your payment of {}", view.amount),
        "renewal_receipt" => format!("Your renewal receipt: {}, {}", view.plan, view.amount),
        "payment_failed" => format!("Your payment of {} did not go through", view.amount),
        "final_notice" => format!(
            "Last try on {}: your payment of {} did not go through",
            view.next_attempt, view.amount
        ),
        "cancellation_confirmed" => {
            format!("Cancelled: your {} ends on {}", view.plan, view.period_end)
        }
        "access_ended" => format!("Your {} has ended", view.plan),
        "renewal_reminder" => format!(
            "Your {} renews on {} for {}",
            view.plan, view.period_end, view.amount
        ),
        _ => "Where your payments stand".into(),
    }
}

/// `<hash of key and generation>@domain`: the same outbox row and resend
/// generation always carries the same Message-ID, so a duplicate delivery is
/// recognisable (and mail clients thread it).
pub fn message_id(key: &str, generation: i32, domain: &str) -> String {
    let h = hex::encode(Sha256::digest(format!("{key}:{generation}").as_bytes()));
    format!("<{}.{generation}@{domain}>", &h[..32])
}

fn build(
    mailer: &Mailer,
    config: &SenderConfig,
    to: Mailbox,
    kind: &str,
    view: &View,
    links: &[Link],
    id: &str,
) -> Result<Message, String> {
    macro_rules! body {
        ($t:ident) => {
            $t {
                kind,
                plan: &view.plan,
                amount: &view.amount,
                refund_amount: &view.refund_amount,
                access_note: &view.access_note,
                paid_on: &view.paid_on,
                reference: &view.reference,
                period_end: &view.period_end,
                next_attempt: &view.next_attempt,
                status_url: &view.status_url,
                links,
                support_email: &config.support_email,
            }
            .render()
            .map_err(|e| e.to_string())?
        };
    }
    let text = body!(TextBody);
    let html = body!(HtmlBody);
    let reply_to: Mailbox = config
        .support_email
        .parse()
        .map_err(|e| format!("support address: {e}"))?;
    Message::builder()
        .from(mailer.from.clone())
        .reply_to(reply_to)
        .to(to)
        .subject(subject(kind, view))
        .message_id(Some(id.to_string()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html),
                ),
        )
        .map_err(|e| e.to_string())
}

/// How a claim ends, in the transaction that records the outcome.
enum Settle {
    Sent,
    GaveUp,
    Retry(DateTime<Utc>),
}

const CLAIM: &str = include_str!("claim_emails.sql");
const SYNC: &str = include_str!("sync_deliveries.sql");

async fn claim(
    client: &deadpool_postgres::Object,
    config: &SenderConfig,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let due = [EmailStatus::Pending.as_str(), EmailStatus::Failed.as_str()];
    client
        .query(
            CLAIM,
            &[
                &config.worker_id,
                &(now + config.lease),
                &now,
                &batch,
                &&due[..],
            ],
        )
        .await
}

/// One pass: claim up to `batch` due rows and try each once.
pub async fn send_due(
    store: &PgEventStore,
    mailer: &Mailer,
    config: &SenderConfig,
) -> Result<SendReport, StoreError> {
    let now = store.clock().now();
    let due = [EmailStatus::Pending.as_str(), EmailStatus::Failed.as_str()];
    let client = store.connection_for_own_tables().await?;
    // The outbox is compared with what the sender knows (a scan of every
    // pending email) only when the known due ones run short, or every
    // `sync_every`: during a burst the claims stay cheap.
    let mut claimed = if config.sync.due(config.sync_every) {
        vec![]
    } else {
        claim(&client, config, now, config.batch).await?
    };
    if claimed.len() < usize::try_from(config.batch).unwrap_or(0) {
        client.execute(SYNC, &[&&due[..], &now]).await?;
        config.sync.done();
        let more = config.batch - i64::try_from(claimed.len()).unwrap_or(0);
        claimed.extend(claim(&client, config, now, more).await?);
    }
    drop(client);
    let mut report = SendReport::default();
    let recipient_of = |row: &Row| row.get::<_, String>("recipient");
    for wave in waves(claimed, config.concurrency.max(1), recipient_of) {
        let attempts = futures_util::future::join_all(
            wave.iter()
                .map(|row| attempt_one(store, mailer, config, row)),
        )
        .await;
        let mut done = vec![];
        for attempt in attempts {
            match attempt? {
                None => report.deferred += 1,
                Some(a) => {
                    match a.settle {
                        Settle::Sent => report.sent += 1,
                        Settle::GaveUp => report.given_up += 1,
                        Settle::Retry(_) => report.failed += 1,
                    }
                    done.push(a);
                }
            }
        }
        record_attempts(store, done).await?;
    }
    Ok(report)
}

/// The claimed rows in waves of at most `size`, one row per recipient in a
/// wave (a customer's emails go out in order): a wave is sent at once and
/// recorded in one commit, so a crash re-sends at most one wave.
fn waves<T>(rows: Vec<T>, size: usize, recipient_of: impl Fn(&T) -> String) -> Vec<Vec<T>> {
    let mut waves: Vec<Vec<T>> = vec![];
    // Each recipient's n-th row goes in a wave after its (n-1)-th.
    let mut next_wave: std::collections::HashMap<String, usize> = Default::default();
    for row in rows {
        let recipient = recipient_of(&row);
        let earliest = next_wave.get(&recipient).copied().unwrap_or(0);
        let slot = (earliest..)
            .find(|&w| waves.get(w).is_none_or(|wave| wave.len() < size))
            .unwrap_or(earliest);
        if slot == waves.len() {
            waves.push(vec![]);
        }
        waves[slot].push(row);
        next_wave.insert(recipient, slot + 1);
    }
    waves
}

/// One email tried: what to record.
struct Attempt {
    key: String,
    generation: i32,
    event: DomainEvent,
    object: String,
    settle: Settle,
}

/// `None`: not tried, its read-model row is not projected yet.
type Attempted = Option<Attempt>;

/// Records a wave's outcomes — the events and the outbox rows — in one
/// transaction: one commit for the wave, not one per email.
async fn record_attempts(store: &PgEventStore, done: Vec<Attempt>) -> Result<(), StoreError> {
    if done.is_empty() {
        return Ok(());
    }
    let mut appends = vec![];
    for a in &done {
        let metadata = Metadata::new(
            uuid::Uuid::new_v4(),
            Actor::System("email-sender".into()),
            "email-sender",
        );
        appends.push(StreamAppend::new(
            StreamId::outbox(&a.key),
            ExpectedVersion::Any,
            vec![EventData::for_processor_fact(
                &a.event, &a.object, metadata,
            )?],
        ));
    }
    let mut client = store.connection_for_own_tables().await?;
    let tx = client.transaction().await?;
    store.append_in(&tx, &appends).await?;
    for a in &done {
        match a.settle {
            Settle::Sent => {
                tx.execute(include_str!("settle_sent.sql"), &[&a.key, &a.generation])
                    .await?
            }
            Settle::GaveUp => {
                tx.execute(
                    include_str!("settle_given_up.sql"),
                    &[&a.key, &a.generation],
                )
                .await?
            }
            Settle::Retry(next) => {
                tx.execute(include_str!("settle_retry.sql"), &[&a.key, &next])
                    .await?
            }
        };
    }
    tx.commit().await?;
    store.appended();
    Ok(())
}

/// Tries one email (or defers it); records nothing but a deferral.
async fn attempt_one(
    store: &PgEventStore,
    mailer: &Mailer,
    config: &SenderConfig,
    row: &Row,
) -> Result<Attempted, StoreError> {
    let key: String = row.get("email_key");
    let kind: String = row.get("kind");
    let recipient: String = row.get("recipient");
    let generation: i32 = row.get("generation");
    let attempt = row.get::<_, i32>("attempts") + 1;
    let payment_id: Option<String> = row.get("payment_id");
    let id = message_id(&key, generation, &mailer.domain());

    let read = ReadModels::of(store);
    let view = view_of(store, &read, config, &key, payment_id.as_deref()).await?;
    let links = if kind == "status_link" {
        links_for(&read, config, &recipient, store.clock().now()).await?
    } else {
        vec![]
    };
    let missing = missing_fields(&kind, &view);
    if !missing.is_empty() && customer_status_is_behind(store).await? {
        // Not a failure: the row arrives when customer_status catches up
        // with the outbox. Asked again shortly, no attempt spent, nothing
        // appended (a burst would otherwise log an EmailFailed per email).
        let later = store.clock().now() + Duration::seconds(1);
        let client = store.connection_for_own_tables().await?;
        client
            .execute(include_str!("settle_later.sql"), &[&key, &later])
            .await?;
        return Ok(None);
    }
    let outcome = match recipient.parse::<Mailbox>() {
        _ if !missing.is_empty() => Err(SendFailure {
            message: format!(
                "not sent: the message would be missing its {} (the read model has no complete row for this payment)",
                missing.join(", ")
            ),
            // The customer_status projection may only be behind: retried,
            // and given up (a discrepancy) after the last attempt.
            permanent: false,
        }),
        Err(e) => Err(SendFailure {
            message: format!("{recipient:?} is not a deliverable address: {e}"),
            permanent: true,
        }),
        Ok(to) => match build(mailer, config, to, &kind, &view, &links, &id) {
            Err(e) => Err(SendFailure {
                message: format!("could not build the message: {e}"),
                permanent: true,
            }),
            Ok(message) => {
                crate::failpoint::hit("sender.before_send");
                mailer.send(message).await
            }
        },
    };
    let (event, object, settle) = match &outcome {
        Ok(()) => (
            EmailSent {
                email_key: key.clone(),
                message_id: id.clone(),
                attempt: attempt as u32,
            }
            .into(),
            format!("{key}:{generation}"),
            Settle::Sent,
        ),
        Err(f) => {
            let give_up = f.permanent || attempt >= config.max_attempts;
            if give_up {
                tracing::warn!(email_key = %key, attempt, error = %f, "giving up on an email");
            } else {
                tracing::info!(email_key = %key, attempt, error = %f, "email failed; will retry");
            }
            let event: DomainEvent = EmailFailed {
                email_key: key.clone(),
                attempt: attempt as u32,
                error: f.message.clone(),
                permanent: give_up,
            }
            .into();
            let settle = if give_up {
                Settle::GaveUp
            } else {
                Settle::Retry(store.clock().now() + backoff(config, attempt))
            };
            (event, format!("{key}:{generation}:{attempt}"), settle)
        }
    };
    crate::failpoint::hit("sender.after_smtp");
    Ok(Some(Attempt {
        key,
        generation,
        event,
        object,
        settle,
    }))
}

/// Whether the projection the messages are written from is running and
/// has not yet reached what the outbox has seen. A stopped one is not
/// "behind": waiting would never end, so the email fails and is given up
/// (a discrepancy) as any other.
async fn customer_status_is_behind(store: &PgEventStore) -> Result<bool, StoreError> {
    use payledger_projections::Projection;
    let client = store.connection_for_own_tables().await?;
    let row = client
        .query_one(
            "SELECT COALESCE(
                (SELECT checkpoint_pos FROM projection_state WHERE name = $1 AND status = $3)
                  < (SELECT checkpoint_pos FROM projection_state WHERE name = $2),
                false)",
            &[
                &payledger_projections::customer_status::CustomerStatus.name(),
                &payledger_projections::outgoing_emails::OutgoingEmails.name(),
                &payledger_projections::states::ProjectionState::Running.as_str(),
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// Exponential from `first_backoff`, capped, with ±25% jitter so a crowd of
/// failures does not come back at the same instant.
fn backoff(config: &SenderConfig, attempt: i32) -> Duration {
    let base = config.first_backoff.num_milliseconds().max(1) as f64
        * 2f64.powi((attempt - 1).clamp(0, 30));
    let capped = base.min(config.max_backoff.num_milliseconds() as f64);
    let jitter = rand::rng().random_range(0.75..1.25);
    Duration::milliseconds((capped * jitter) as i64)
}

/// Sends until `stop`; a database hiccup is logged and retried.
pub async fn run(
    store: PgEventStore,
    mailer: Mailer,
    config: SenderConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let busy = match send_due(&store, &mailer, &config).await {
            Ok(r) => r.sent + r.failed + r.given_up > 0,
            Err(e) => {
                tracing::warn!(error = %e, "email sender pass failed; will retry");
                false
            }
        };
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(config.poll) => {}
                _ = stop.changed() => return,
            }
        } else if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod wave_tests {
    use super::waves;

    #[test]
    fn a_wave_holds_one_email_per_recipient_and_keeps_each_recipients_order() {
        let rows = vec![
            ("ann", 1),
            ("ann", 2),
            ("bob", 1),
            ("cat", 1),
            ("ann", 3),
            ("dan", 1),
        ];
        let got = waves(rows, 3, |r| r.0.to_string());
        assert_eq!(
            got,
            vec![
                vec![("ann", 1), ("bob", 1), ("cat", 1)],
                vec![("ann", 2), ("dan", 1)],
                vec![("ann", 3)],
            ]
        );
        for wave in &got {
            assert!(wave.len() <= 3);
        }
    }
}
