//! `holdfast backup FILE`: a consistent copy of a live SQLite database. `VACUUM INTO` reads one
//! snapshot (a read transaction: webhooks keep being committed meanwhile) and writes it as a
//! compact database. The copy is written next to FILE, synced, then renamed into place, so
//! FILE is either absent or complete.

use std::path::{Path, PathBuf};

use crate::store::{Store, StoreError};

/// Why no backup was written.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file (a backup never overwrites)")]
    Exists(PathBuf),
    #[error("`holdfast backup` copies SQLite databases; back up Postgres with pg_dump (or your provider's snapshots)")]
    Postgres,
    #[error("the backup file name must be valid UTF-8")]
    NotUtf8,
    #[error("writing the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error("copying the database: {0}")]
    Store(#[from] StoreError),
}

impl Store {
    /// Write a consistent copy of the database to `file` (SQLite only).
    pub async fn backup_to(&self, file: &Path) -> Result<(), BackupError> {
        let Self::Sqlite(s) = self else { return Err(BackupError::Postgres) };
        if file.exists() {
            return Err(BackupError::Exists(file.to_owned()));
        }
        let mut partial = file.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        // A leftover from an interrupted run is ours to replace (VACUUM INTO needs no file).
        match std::fs::remove_file(&partial) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let target = partial.to_str().ok_or(BackupError::NotUtf8)?;
        // Webhooks still in the inbox join the log first: the copy holds every event
        // acknowledged before it began.
        s.drain_inbox_fully().await?;
        sqlx::query("VACUUM INTO $1").bind(target).execute(s.pool()).await.map_err(StoreError::from)?;
        // VACUUM INTO does not sync what it wrote; a backup must survive a crash right after.
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, file)?;
        let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }
}
