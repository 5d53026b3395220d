//! WAL checkpoints on a thread of their own. SQLite copies the WAL back into the database
//! file ("checkpoints") by default inside the commit that pushes the WAL past 1,000 pages,
//! on the committing connection. For the append thread that meant stopping every ~1,200
//! webhooks to copy ~4 MB and fsync the database while 64 requests waited behind it (seen in
//! `strace` of a C = 64 run: thousands of `pread`/`pwrite` pairs between two batches). The
//! append and projector connections now never checkpoint (`wal_autocheckpoint = 0`); this
//! thread runs a `PASSIVE` checkpoint every [`EVERY`], which copies what no reader still
//! needs without taking the write lock, so appends and projections go on meanwhile. Once
//! everything is copied, the next writer starts the WAL over from its beginning, as before:
//! the WAL stays bounded by what is written in a few periods.
//!
//! Under a steady stream of appends a passive checkpoint rarely finds the WAL at rest, and
//! the WAL only starts over once all of it is copied. So a tick repeats the checkpoint while
//! it makes progress (each copies what arrived during the one before, a shrinking tail), and
//! past [`RESTART_AT_FRAMES`] it runs a `RESTART` checkpoint, which holds new writers back
//! for the last tail and makes the next writer start the WAL over.
//!
//! The `RESTART` runs whenever the WAL is past [`RESTART_AT_FRAMES`], even when the passive
//! checkpoints copied all of it. A writer starts the WAL over only if it begins with all of
//! it copied and no reader in it, and the projector begins its next pass within a
//! millisecond of its commit, while readers come and go: draining a backlog, the passive
//! checkpoints copied everything and the WAL still never started over, growing with all
//! that was written (1.4 GB for a 100,000-event backlog). A `RESTART` waits for the write
//! lock with SQLite's busy handler, which sleeps between tries, while the projector tries
//! every half millisecond (`lock`); so a pending `RESTART` is announced
//! ([`Checkpointer::make_way`]) and the projector lets it take the lock before its next pass.
//! Once two `RESTART`s in a row could not finish and stopped at the same frame (a reader
//! stays on an old snapshot), the next waits out a back-off ([`RESTART_BACKOFF_FIRST`]),
//! since each try holds writers back and cannot succeed before that reader leaves.
//!
//! Durability is unchanged: a checkpoint only copies committed frames, and syncs the WAL
//! before and the database after (`synchronous` of its connection). A failed checkpoint
//! loses nothing (the frames stay in the WAL); it is logged and retried on a fresh
//! connection at the next tick. The store's other connections keep SQLite's automatic
//! checkpoint as a fallback.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long the projector holds back for a pending `RESTART` at most: the checkpoint's own
/// wait for the lock, and the projector's next try finds the lock free or waits for it.
const MAKE_WAY_AT_MOST: Duration = Duration::from_millis(150);
/// Between two looks at a pending `RESTART`.
const MAKE_WAY_POLL: Duration = Duration::from_millis(1);

/// Between two checkpoints. At 10,000 webhooks/s that is ~1,000 events, ~3 MB of WAL.
pub const EVERY: Duration = Duration::from_millis(100);
/// Passive checkpoints in a row, in one tick, while each copies more.
const CATCH_UP_TRIES: usize = 4;
/// WAL frames (4 KiB pages) past which a tick runs a `RESTART` checkpoint: 64 MiB, a few
/// seconds of appends at full speed.
pub const RESTART_AT_FRAMES: i64 = 16_384;
/// How long a `RESTART` checkpoint waits for the writer and readers before it goes on as a
/// passive one (retried later). It holds the write lock while it waits for readers, so this
/// is also the longest it can hold an append back.
const BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// Ticks without a `RESTART` after two in a row that could not finish within
/// [`BUSY_TIMEOUT`] and stopped copying at the same frame (a reader stays on an old
/// snapshot), doubling per further such `RESTART` up to [`RESTART_BACKOFF_MOST`]. A reader
/// that stays in the WAL for seconds (a large backup) would otherwise make every tick hold
/// writers back for [`BUSY_TIMEOUT`]; with the back-off, one tick in 6, then 11, then 21. The WAL
/// cannot start over while that reader is in it anyway. A `RESTART` that was busy for
/// other reasons (the writer kept the lock, readers came and went) is retried at the next
/// tick: backing off then let a busy writer grow the WAL past its bound.
const RESTART_BACKOFF_FIRST: u32 = 5;
const RESTART_BACKOFF_MOST: u32 = 20;

/// The checkpoint thread of one database file. It ends at [`Checkpointer::stop`] or once the
/// last handle is dropped, within [`EVERY`].
#[derive(Clone, Debug)]
pub struct Checkpointer {
    stopped: Arc<AtomicBool>,
    /// A `RESTART` checkpoint waits for the write lock.
    restart_pending: Arc<AtomicBool>,
}

impl Checkpointer {
    /// Start checkpointing the database file `db`.
    pub fn start(db: PathBuf) -> std::io::Result<Self> {
        Self::start_restarting_at(db, RESTART_AT_FRAMES)
    }

    /// [`Checkpointer::start`], with a `RESTART` past `restart_at` frames.
    fn start_restarting_at(db: PathBuf, restart_at: i64) -> std::io::Result<Self> {
        let stopped = Arc::new(AtomicBool::new(false));
        let restart_pending = Arc::new(AtomicBool::new(false));
        let (watched, pending) = (stopped.clone(), restart_pending.clone());
        let spawned = std::thread::Builder::new().name("sqlite-checkpoint".into());
        spawned.spawn(move || run(&db, &watched, &pending, restart_at))?;
        Ok(Self { stopped, restart_pending })
    }

    /// Before a writer that retries for the lock takes it: wait (up to [`MAKE_WAY_AT_MOST`])
    /// while a `RESTART` checkpoint waits for it, so the checkpoint gets it first.
    pub async fn make_way(&self) {
        let deadline = tokio::time::Instant::now() + MAKE_WAY_AT_MOST;
        while self.restart_pending.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(MAKE_WAY_POLL).await;
        }
    }

    /// Stop the thread (the store is closing): it closes its connection within [`EVERY`].
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// What one `PRAGMA wal_checkpoint` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpointed {
    /// The checkpoint could not finish (a `RESTART` that met the writer or a reader).
    busy: bool,
    /// Frames in the WAL.
    wal_frames: i64,
    /// Of those, copied into the database (all but what a reader still needs).
    copied_frames: i64,
}

fn run(db: &Path, stopped: &Arc<AtomicBool>, restart_pending: &AtomicBool, restart_at: i64) {
    let mut conn: Option<Connection> = None;
    let mut failing = false;
    let mut restarts = Restarts::past(restart_at);
    // The last handle gone (count 1: this thread's) also stops it.
    while !stopped.load(Ordering::Relaxed) && Arc::strong_count(stopped) > 1 {
        std::thread::sleep(EVERY);
        let result = match conn.as_ref() {
            Some(c) => tick(c, restart_pending, &mut restarts),
            None => open(db).and_then(|c| tick(conn.insert(c), restart_pending, &mut restarts)),
        };
        match result {
            Ok(_) => failing = false,
            Err(e) => {
                // Reported once per streak: a missing file (the store being deleted) would
                // otherwise log ten times a second.
                if !failing {
                    tracing::warn!(error = %e, "SQLite WAL checkpoint failed; retrying");
                }
                failing = true;
                conn = None;
            }
        }
    }
}

fn open(db: &Path) -> rusqlite::Result<Connection> {
    // No CREATE: a database deleted under us is not recreated empty by its checkpointer.
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// When a tick runs a `RESTART`.
#[derive(Debug)]
struct Restarts {
    /// Past this many WAL frames.
    past_frames: i64,
    /// The WAL's frames when the last `RESTART` finished. The WAL starts over at the next
    /// write, and until then still reports them: an idle store would otherwise run a
    /// `RESTART` every tick, each taking the write lock.
    done_at: Option<i64>,
    /// `RESTART`s run so far.
    ran: u64,
    /// How far the last `RESTART` that could not finish copied the WAL.
    busy_copied: Option<i64>,
    /// Ticks left before the next `RESTART` may run (after busy ones).
    hold_off: u32,
    /// The next busy `RESTART`'s hold-off.
    backoff: u32,
}

impl Restarts {
    fn past(frames: i64) -> Self {
        Self { past_frames: frames, done_at: None, ran: 0, busy_copied: None, hold_off: 0, backoff: RESTART_BACKOFF_FIRST }
    }

    /// Whether this tick may run a `RESTART` of a WAL of `wal_frames` (counting the tick).
    fn due(&mut self, wal_frames: i64) -> bool {
        if self.hold_off > 0 {
            self.hold_off -= 1;
            return false;
        }
        wal_frames > self.past_frames && self.done_at != Some(wal_frames)
    }

    /// Note how a `RESTART` ended.
    fn ended(&mut self, result: &Checkpointed) {
        self.ran += 1;
        self.done_at = (!result.busy && result.copied_frames == result.wal_frames).then_some(result.wal_frames);
        if !result.busy {
            self.busy_copied = None;
            self.backoff = RESTART_BACKOFF_FIRST;
            return;
        }
        // Busy because the writer kept the lock, or readers came and went: the copy moved on
        // since the last busy one, and the next tick's `RESTART` keeps the WAL bounded. Busy
        // and stuck where the last one stopped, with frames left: a reader stays on an old
        // snapshot, and until it leaves every try only holds writers back.
        let stuck = self.busy_copied == Some(result.copied_frames) && result.copied_frames < result.wal_frames;
        self.busy_copied = Some(result.copied_frames);
        if stuck {
            self.hold_off = self.backoff;
            self.backoff = (self.backoff * 2).min(RESTART_BACKOFF_MOST);
        }
    }
}

/// One tick: passive checkpoints while they make progress, then a `RESTART` one if the WAL
/// is long (and not already restarted).
fn tick(conn: &Connection, restart_pending: &AtomicBool, restarts: &mut Restarts) -> rusqlite::Result<Checkpointed> {
    let mut last = checkpoint(conn, Mode::Passive)?;
    for _ in 1..CATCH_UP_TRIES {
        if last.copied_frames >= last.wal_frames {
            break;
        }
        let next = checkpoint(conn, Mode::Passive)?;
        // A reader still needs the rest: the next tick.
        let stuck = next.copied_frames <= last.copied_frames && next.wal_frames == last.wal_frames;
        last = next;
        if stuck {
            break;
        }
    }
    // Even when everything is copied: the WAL starts over only if a writer begins after the
    // copy with no reader still in the WAL, and the projector begins its next pass within a
    // millisecond of its commit, so under a backlog the WAL never started over by itself.
    if restarts.due(last.wal_frames) {
        restart_pending.store(true, Ordering::Release);
        let restarted = checkpoint(conn, Mode::Restart);
        restart_pending.store(false, Ordering::Release);
        last = restarted?;
        restarts.ended(&last);
        tracing::debug!(
            wal_frames = last.wal_frames,
            copied_frames = last.copied_frames,
            busy = last.busy,
            ran = restarts.ran,
            "RESTART checkpoint"
        );
    }
    Ok(last)
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Copies what no reader needs; takes no lock writers wait for.
    Passive,
    /// Waits for the writer and the readers, copies everything, and makes the next writer
    /// start the WAL over.
    Restart,
}

fn checkpoint(conn: &Connection, mode: Mode) -> rusqlite::Result<Checkpointed> {
    let sql = match mode {
        Mode::Passive => "PRAGMA wal_checkpoint(PASSIVE)",
        Mode::Restart => "PRAGMA wal_checkpoint(RESTART)",
    };
    conn.query_row(sql, [], |r| {
        Ok(Checkpointed { busy: r.get::<_, i64>(0)? != 0, wal_frames: r.get(1)?, copied_frames: r.get(2)? })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::domain::event::Event;
    use crate::store::Store;
    use crate::store::writer::Writer;

    fn event(id: &str) -> Event {
        // ~3 KB, as a Stripe event is: the WAL grows by a page or so per event.
        let padding = "x".repeat(3_000);
        let body = format!(
            r#"{{"id":"{id}","object":"event","type":"customer.created","created":10,"data":{{"object":{{"id":"cus_{id}","object":"customer","description":"{padding}"}}}}}}"#
        );
        Event::parse(body.as_bytes()).expect("valid event")
    }

    async fn append(writer: &Writer, round: usize, n: usize) {
        let sent: Vec<_> = (0..n)
            .map(|i| {
                let w = writer.clone();
                tokio::spawn(async move { w.submit(event(&format!("evt_{round}_{i}"))).await })
            })
            .collect();
        for s in sent {
            assert!(s.await.expect("task").is_ok(), "stored");
        }
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until at least `bytes` more are in `db` and it stopped growing for a few
    /// checkpoint periods: the WAL is all copied.
    async fn wait_copied(db: &Path, from: u64, bytes: u64) {
        let size = || std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
        wait_until("the events are copied into the database file", || size() >= from + bytes).await;
        let mut last = size();
        let mut still = 0;
        while still < 4 {
            tokio::time::sleep(EVERY).await;
            let now = size();
            still = if now == last { still + 1 } else { 0 };
            last = now;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_reach_the_database_file_and_the_wal_is_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Webhooks are appended to the inbox file (no projector runs here to drain it): its
        // checkpoint thread is the one under test.
        let db = dir.path().join("c.db-inbox");
        let wal = dir.path().join("c.db-inbox-wal");
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("c.db").display())).await.expect("connect");
        store.migrate().await.expect("migrate");
        let (writer, task) = Writer::start(store.clone(), Clock::system());
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);

        // ~3 MB of events: the append connection never checkpoints, so only this thread can
        // have copied them into the database file.
        let before = size(&db);
        append(&writer, 0, 1_000).await;
        wait_copied(&db, before, 2_900_000).await;

        // Everything copied, the next writer starts the WAL over: rounds of the same size
        // keep it at about one round's size (without reuse it would grow by one per round).
        let mut after_round = Vec::new();
        for round in 1..=4 {
            let copied = size(&db);
            append(&writer, round, 1_000).await;
            wait_copied(&db, copied, 2_900_000).await;
            after_round.push(size(&wal));
        }
        assert!(after_round[0] > 0, "the appends went through the WAL");
        assert!(after_round[3] <= 2 * after_round[0], "the WAL is reused, bytes after each round: {after_round:?}");
        drop(writer);
        task.await.expect("the append thread ends");
    }

    /// A WAL-mode database at `db` with a table `t`, on a connection that never checkpoints.
    fn wal_database(db: &Path) -> Connection {
        let writer = Connection::open(db).expect("open");
        writer.pragma_update(None, "journal_mode", "WAL").expect("wal");
        writer.pragma_update(None, "wal_autocheckpoint", 0).expect("no autocheckpoint");
        writer.execute("CREATE TABLE t (b BLOB)", []).expect("table");
        writer
    }

    /// `rows` rows of ~8 KB into `t`: two or three WAL frames each.
    fn write_pages(writer: &Connection, rows: usize) {
        for _ in 0..rows {
            writer.execute("INSERT INTO t (b) VALUES (zeroblob(8000))", []).expect("insert");
        }
    }

    /// A `RESTART` that finished is not run again until the WAL has started over (at the
    /// next write) and grown past the mark again: the WAL reports its old length until then.
    #[test]
    fn a_finished_restart_is_not_repeated_while_the_store_is_idle() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("r.db");
        let writer = wal_database(&db);
        let write = |rows: usize| write_pages(&writer, rows);
        let checkpointer = open(&db).expect("checkpoint connection");
        let pending = AtomicBool::new(false);
        let mut restarts = Restarts::past(64);

        write(100);
        let first = tick(&checkpointer, &pending, &mut restarts).expect("tick");
        assert_eq!((restarts.ran, restarts.done_at), (1, Some(first.wal_frames)), "past the mark, a RESTART ran and finished");
        let idle = tick(&checkpointer, &pending, &mut restarts).expect("tick");
        assert_eq!(idle.wal_frames, first.wal_frames, "the WAL reports its old length until the next write");
        assert_eq!(restarts.ran, 1, "and no RESTART ran again");

        write(1);
        let started_over = tick(&checkpointer, &pending, &mut restarts).expect("tick");
        assert!(started_over.wal_frames < 64, "the next write started the WAL over: {started_over:?}");
        write(100);
        let again = tick(&checkpointer, &pending, &mut restarts).expect("tick");
        assert_eq!((restarts.ran, restarts.done_at), (2, Some(again.wal_frames)), "past the mark again, a RESTART runs again");
        assert!(!pending.load(Ordering::Relaxed), "no RESTART is left announced");
    }

    /// A reader that stays on an old snapshot makes a `RESTART` wait [`BUSY_TIMEOUT`] with the
    /// write lock held, and fail, stuck at the same frame: after two, the next ones back off
    /// (down to one tick in 21) instead of holding writers back at every tick, and once the
    /// reader is gone the next `RESTART` finishes.
    #[test]
    fn a_long_reader_does_not_hold_writers_back_at_every_tick() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("b.db");
        let writer = wal_database(&db);
        write_pages(&writer, 100);
        let reader = Connection::open(&db).expect("reader");
        reader.execute_batch("BEGIN; SELECT COUNT(*) FROM t;").expect("a read that stays open");
        // Written after the reader's snapshot: no checkpoint can copy them while it stays.
        write_pages(&writer, 100);
        let checkpointer = open(&db).expect("checkpoint connection");
        let pending = AtomicBool::new(false);
        let mut restarts = Restarts::past(64);

        let first = tick(&checkpointer, &pending, &mut restarts).expect("tick");
        assert!(first.busy && restarts.ran == 1, "the reader keeps the RESTART from finishing: {first:?}");
        // Two seconds of ticks: without the back-off, 20 RESTARTs, each holding writers back.
        for _ in 0..20 {
            tick(&checkpointer, &pending, &mut restarts).expect("tick");
        }
        assert_eq!(restarts.ran, 4, "RESTARTs at the first two ticks, then after 5 and 10 ticks of back-off");

        reader.execute_batch("COMMIT").expect("the reader leaves");
        let mut finished = None;
        for _ in 0..=RESTART_BACKOFF_MOST {
            let done = tick(&checkpointer, &pending, &mut restarts).expect("tick");
            if restarts.done_at.is_some() {
                finished = Some(done);
                break;
            }
        }
        let finished = finished.expect("a RESTART finishes within one back-off once the reader is gone");
        assert!(!finished.busy, "{finished:?}");
        assert_eq!((restarts.ran, restarts.backoff), (5, RESTART_BACKOFF_FIRST), "and the back-off starts over");
    }

    /// Busy, but copying further each time (the writer kept the lock, readers came and went):
    /// retried at the next tick, so a busy writer cannot grow the WAL past its bound. Busy and
    /// stuck at the same frame twice: backed off.
    #[test]
    fn only_a_restart_stuck_at_the_same_frame_backs_off() {
        let busy = |wal_frames, copied_frames| Checkpointed { busy: true, wal_frames, copied_frames };
        let mut restarts = Restarts::past(64);
        restarts.ended(&busy(500, 300));
        restarts.ended(&busy(700, 600));
        assert!(restarts.due(700), "the copy moved on: the next tick tries again");
        restarts.ended(&busy(800, 600));
        assert!(!restarts.due(800), "stuck at frame 600: the next tick holds off");
        assert_eq!(restarts.hold_off, RESTART_BACKOFF_FIRST - 1);
    }

    /// A writer that takes the lock again as soon as it committed (`lock::begin_immediate`,
    /// as the projector does) and readers that come and go: the WAL stays bounded. (This
    /// bounds the WAL; it does not reproduce the server's case the `RESTART` rule was changed
    /// for, where the passive checkpoints copied everything and the WAL still never started
    /// over. Here a writer this fast outruns them, and the old rule restarted too. That case
    /// is measured: README, "Benchmarks", fifth round.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_writer_and_readers_do_not_keep_the_wal_growing() {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("w.db");
        let options = SqliteConnectOptions::new()
            .filename(&db)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0")
            .busy_timeout(Duration::ZERO);
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.expect("writer");
        sqlx::query("CREATE TABLE t (b BLOB)").execute(&writer).await.expect("table");
        let readers = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.busy_timeout(Duration::from_secs(5)))
            .await
            .expect("readers");
        // 1 MiB of WAL before a RESTART; 192 MiB written in all.
        let checkpointer = Checkpointer::start_restarting_at(db.clone(), 256).expect("checkpointer");
        let reading = Arc::new(AtomicBool::new(true));
        let reader = {
            let (readers, reading) = (readers.clone(), reading.clone());
            tokio::spawn(async move {
                while reading.load(Ordering::Relaxed) {
                    let mut tx = readers.begin().await.expect("read");
                    sqlx::query("SELECT COUNT(*) FROM t").execute(&mut *tx).await.expect("count");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    tx.commit().await.expect("end read");
                }
            })
        };
        let blob = vec![7u8; 64 * 1024];
        let wal_size = || std::fs::metadata(dir.path().join("w.db-wal")).map(|m| m.len()).unwrap_or(0);
        let mut largest = 0;
        for _ in 0..3_072 {
            checkpointer.make_way().await;
            let mut tx = crate::store::sqlite::lock::begin_immediate(&writer).await.expect("lock");
            sqlx::query("INSERT INTO t (b) VALUES ($1)").bind(&blob).execute(&mut *tx).await.expect("insert");
            tx.commit().await.expect("commit");
            largest = largest.max(wal_size());
        }
        reading.store(false, Ordering::Relaxed);
        reader.await.expect("reader");
        checkpointer.stop();
        // At most a few ticks' worth of writes (a tick copies and syncs tens of MiB here).
        assert!(largest < 96 * 1024 * 1024, "the WAL grew to {largest} bytes with 192 MiB written");
    }
}
