//! What the bench reads from the server's database, on connections of its own: this run's
//! stored events (the durability check) and the projector's lag (its cursor behind the
//! log's head). On SQLite, webhooks are appended to the inbox file beside the database and
//! copied into the log before they are projected: the bench attaches the inbox and counts
//! what waits there too.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sqlx::Connection as _;

/// How many of this run's events (tagged `tag`) the server stored.
pub async fn count_persisted(database_url: &str, tag: &str) -> Result<i64> {
    // `_` is a LIKE wildcard; escape it so only this run's ids match.
    let pattern = format!("evt\\_bench\\_{tag}\\_%");
    if database_url.starts_with("sqlite:") {
        let mut conn = connect_sqlite(database_url).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT id FROM stripe_events WHERE id LIKE ?1 ESCAPE '\\' \
             UNION SELECT id FROM inbox.webhook_inbox WHERE id LIKE ?1 ESCAPE '\\')",
        )
        .bind(&pattern)
        .fetch_one(&mut conn)
        .await
        .context("counting stripe_events in SQLite")?;
        conn.close().await.ok();
        Ok(n)
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        let mut conn = sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stripe_events WHERE id LIKE $1 ESCAPE '\\'")
            .bind(&pattern)
            .fetch_one(&mut conn)
            .await
            .context("counting stripe_events in Postgres")?;
        conn.close().await.ok();
        Ok(n)
    } else {
        bail!("unsupported DATABASE_URL scheme (expected sqlite: or postgres:)")
    }
}

/// A connection to the database at `url` with its webhook inbox attached as `inbox`.
async fn connect_sqlite(url: &str) -> Result<sqlx::SqliteConnection> {
    use std::str::FromStr as _;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).context("parsing the SQLite URL")?;
    let mut inbox = options.get_filename().as_os_str().to_owned();
    inbox.push("-inbox");
    let inbox = inbox.into_string().map_err(|_| anyhow::anyhow!("the database path is not UTF-8"))?;
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await.context("connecting to SQLite")?;
    if std::path::Path::new(&inbox).exists() {
        sqlx::query("ATTACH DATABASE ?1 AS inbox").bind(&inbox).execute(&mut conn).await.context("attaching the inbox")?;
    } else {
        // A server from before the inbox: an empty one in memory keeps the queries the same
        // (attaching the path would create a file the server would then take for its own).
        sqlx::query("ATTACH DATABASE ':memory:' AS inbox").execute(&mut conn).await.context("attaching an empty inbox")?;
        sqlx::query("CREATE TABLE inbox.webhook_inbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)")
            .execute(&mut conn)
            .await
            .context("attaching an empty inbox")?;
    }
    Ok(conn)
}

enum Db {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Db {
    /// (the log's head, the projector's cursor, customers whose figures wait for a recompute)
    async fn positions(&mut self) -> Result<(i64, i64, i64)> {
        Ok(match self {
            Self::Sqlite(c) => {
                // The inbox's rows after the log's last event are not copied yet (the inbox is
                // copied, and then deleted, in order): each will take the next position.
                sqlx::query_as(
                    "SELECT (SELECT COALESCE(MAX(rowid), 0) FROM stripe_events) + (SELECT COUNT(*) FROM inbox.webhook_inbox \
                     WHERE seq > COALESCE((SELECT i.seq FROM inbox.webhook_inbox i WHERE i.id = \
                     (SELECT id FROM stripe_events ORDER BY rowid DESC LIMIT 1)), 0)), \
                     (SELECT position FROM projector_cursor), (SELECT COUNT(*) FROM metric_stale)",
                )
                .fetch_one(c)
                .await?
            }
            Self::Postgres(c) => {
                sqlx::query_as(
                    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM stripe_events), (SELECT position FROM projector_cursor), \
                     (SELECT COUNT(*) FROM metric_stale)",
                )
                .fetch_one(c)
                .await?
            }
        })
    }
}

/// The projector's lag over a run, and its rate while draining what was left at the end.
pub struct Lag {
    pub events_p99: i64,
    pub events_max: i64,
    pub seconds_p99: f64,
    pub seconds_max: f64,
    pub drained: i64,
    pub drain_secs: f64,
    pub drain_rate: f64,
}

/// Samples (time, head, cursor) every 100 ms on its own connection.
pub struct LagSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Vec<(f64, i64, i64)>>>,
}

impl LagSampler {
    pub async fn start(database_url: &str) -> Result<Self> {
        let mut db = if database_url.starts_with("sqlite:") {
            Db::Sqlite(connect_sqlite(database_url).await?)
        } else {
            Db::Postgres(sqlx::PgConnection::connect(database_url).await.context("connecting to Postgres")?)
        };
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                let (head, cursor, stale) = db.positions().await?;
                samples.push((t0.elapsed().as_secs_f64(), head, cursor));
                // After the run: until the projector has passed the head and the owner's figures
                // caught up with it (or 10 minutes).
                let caught_up = cursor >= head && stale == 0;
                if *stopped.borrow_and_update() && (caught_up || t0.elapsed() > Duration::from_secs(600)) {
                    return Ok(samples);
                }
            }
        });
        Ok(Self { stop, task })
    }

    pub async fn finish(self) -> Result<Lag> {
        // A send fails only if the task already ended (its error is returned below).
        let _ = self.stop.send(true);
        let samples = self.task.await.context("sampler task")??;
        // Lag at a sample: events between the cursor and the head, and how long ago the first
        // of them arrived (the first sample whose head had passed the cursor).
        let mut seconds = Vec::with_capacity(samples.len());
        let mut events = Vec::with_capacity(samples.len());
        for &(t, head, cursor) in &samples {
            let behind = (head - cursor).max(0);
            events.push(behind);
            let since = samples.iter().find(|s| s.1 > cursor).map_or(t, |s| s.0);
            seconds.push(if behind > 0 { (t - since).max(0.0) } else { 0.0 });
        }
        events.sort_unstable();
        seconds.sort_by(f64::total_cmp);
        let pick = |n: usize| ((n as f64 * 0.99).ceil() as usize).clamp(1, n.max(1)) - 1;
        let (events_p99, events_max) =
            (events.get(pick(events.len())).copied().unwrap_or(0), events.last().copied().unwrap_or(0));
        let (seconds_p99, seconds_max) =
            (seconds.get(pick(seconds.len())).copied().unwrap_or(0.0), seconds.last().copied().unwrap_or(0.0));
        // Drain: from the last sample with the load running (the highest head) to caught up.
        let head_end = samples.last().map_or(0, |s| s.1);
        let start = samples.iter().position(|s| s.1 >= head_end).unwrap_or(0);
        let (t_start, cursor_start) = (samples[start].0, samples[start].2);
        let t_end = samples.last().map_or(t_start, |s| s.0);
        let drained = head_end - cursor_start;
        let drain_secs = (t_end - t_start).max(0.1);
        Ok(Lag { events_p99, events_max, seconds_p99, seconds_max, drained, drain_secs, drain_rate: drained as f64 / drain_secs })
    }
}
