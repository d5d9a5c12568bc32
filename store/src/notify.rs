//! Waking readers after appends without putting `NOTIFY` on the append's
//! commit path: PostgreSQL serialises commits that notify, so appends only
//! ring a bell, and one task per process turns the rings into at most one
//! `NOTIFY` per interval. A rolled-back append never rings.

use super::{read_all_with, StoreError};
use deadpool_postgres::Pool;
use futures_util::future::poll_fn;
use payledger_events::{Checkpoint, RecordedEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

/// The PostgreSQL channel appends are announced on.
pub const EVENTS_CHANNEL: &str = "payledger_events";

/// The shortest gap between two notifications from one process.
const COALESCE_INTERVAL: Duration = Duration::from_millis(5);

/// Turns "something was appended" into at most one NOTIFY per few milliseconds.
#[derive(Clone)]
pub struct AppendNotifier {
    bell: mpsc::Sender<()>,
}

impl AppendNotifier {
    /// Spawns the notifying task; it ends when the last clone is dropped.
    pub fn spawn(pool: Pool) -> Self {
        let (bell, mut rings) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            while rings.recv().await.is_some() {
                match pool.get().await {
                    Ok(client) => {
                        match client
                            .execute("SELECT pg_notify($1, '')", &[&EVENTS_CHANNEL])
                            .await
                        {
                            Ok(_) => {}
                            // The process is ending (a CLI command that just
                            // appended): nobody is left to tell, and readers
                            // poll anyway.
                            Err(e) if e.is_closed() => {
                                tracing::debug!(error = %e, "could not notify readers; they will poll")
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "could not notify readers; they will poll")
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "could not notify readers; they will poll")
                    }
                }
                tokio::time::sleep(COALESCE_INTERVAL).await;
            }
        });
        AppendNotifier { bell }
    }

    /// Asks for a notification soon; rings while one is pending are merged.
    pub fn ring(&self) {
        let _ = self.bell.try_send(());
    }
}

/// A dedicated connection that `LISTEN`s for appends. If it drops, waiting
/// degrades to polling and the listener reconnects on the next wait.
pub struct AppendListener {
    config: tokio_postgres::Config,
    woken: Arc<Notify>,
    connection: Option<(tokio_postgres::Client, tokio::task::JoinHandle<()>)>,
}

impl AppendListener {
    /// A notifier with its own connection to the server of `config`.
    pub async fn connect(config: tokio_postgres::Config) -> Self {
        let mut listener = AppendListener {
            config,
            woken: Arc::new(Notify::new()),
            connection: None,
        };
        listener.ensure_connected().await;
        listener
    }

    async fn ensure_connected(&mut self) {
        if let Some((_, task)) = &self.connection {
            if !task.is_finished() {
                return;
            }
        }
        self.connection = None;
        match self.config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let woken = self.woken.clone();
                let task = tokio::spawn(async move {
                    while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
                        match message {
                            Ok(AsyncMessage::Notification(_)) => woken.notify_one(),
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                let listen = format!("LISTEN {EVENTS_CHANNEL}");
                if let Err(e) = client.batch_execute(&listen).await {
                    tracing::warn!(error = %e, "LISTEN failed; falling back to polling");
                    task.abort();
                    return;
                }
                self.connection = Some((client, task));
            }
            Err(e) => {
                tracing::warn!(error = %e, "listener cannot connect; falling back to polling")
            }
        }
    }

    /// Returns `true` when woken by a notification, `false` after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> bool {
        self.ensure_connected().await;
        tokio::time::timeout(timeout, self.woken.notified())
            .await
            .is_ok()
    }
}

/// Follows the global order from a checkpoint: reads, and when caught up
/// waits for a notification or the poll interval, whichever comes first.
pub struct Subscription {
    pool: Pool,
    listener: AppendListener,
    checkpoint: Checkpoint,
    batch_size: i64,
    poll_interval: Duration,
}

impl Subscription {
    /// Starts following the log after `from`.
    pub async fn start(
        pool: Pool,
        config: tokio_postgres::Config,
        from: Checkpoint,
        batch_size: i64,
        poll_interval: Duration,
    ) -> Self {
        Subscription {
            pool,
            listener: AppendListener::connect(config).await,
            checkpoint: from,
            batch_size,
            poll_interval,
        }
    }

    /// Where the subscription has read to.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// The next non-empty batch, waiting as long as it takes.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        // After a notification the event may still sit behind an older
        // transaction that has not finished; re-read soon instead of waiting
        // a whole poll interval.
        let mut retry_after: Option<Duration> = None;
        loop {
            let client = self.pool.get().await?;
            let batch = read_all_with(&client, self.checkpoint, self.batch_size).await?;
            drop(client);
            if let Some(last) = batch.last() {
                self.checkpoint = last.checkpoint();
                return Ok(batch);
            }
            match retry_after {
                Some(delay) if delay < self.poll_interval => {
                    tokio::time::sleep(delay).await;
                    retry_after = Some(delay * 2);
                }
                _ => {
                    let notified = self.listener.wait(self.poll_interval).await;
                    retry_after = notified.then_some(Duration::from_millis(5));
                }
            }
        }
    }
}
