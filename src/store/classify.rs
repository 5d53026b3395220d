//! What a database error means for the caller, decided per backend. SQLite reports numeric
//! result codes and Postgres five-character SQLSTATEs; some SQLSTATEs are all digits
//! (`22021`), so a code is only read after asking which database sent it.

use sqlx::error::DatabaseError;

/// How a database error is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Not now: the database is busy, away, out of a resource (disk, descriptors, memory,
    /// connections). The same statement may succeed later: answer 503, retry.
    Transient,
    /// The data of the statement can never be stored as it is (a value the column can't
    /// hold, a key too large for its index, a constraint). Retrying can't help; in a batch,
    /// only the row that carries it should fail.
    Data,
    /// Anything else (a bug, a missing table, a corrupt file): neither retried silently nor
    /// blamed on one event.
    Other,
}

/// Classify a database error by the backend that raised it.
pub fn classify(db: &(dyn DatabaseError + 'static)) -> ErrorClass {
    if let Some(e) = db.try_downcast_ref::<sqlx::sqlite::SqliteError>() {
        return e.code().and_then(|c| c.parse::<i32>().ok()).map_or(ErrorClass::Other, sqlite_class);
    }
    if let Some(e) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return postgres_class(e.code());
    }
    ErrorClass::Other
}

/// SQLite result codes (primary code = low byte of the extended code).
pub fn sqlite_class(code: i32) -> ErrorClass {
    match code & 0xff {
        // BUSY, LOCKED: another connection held the lock past busy_timeout. NOMEM.
        // IOERR (a read or write failed: EMFILE and EIO land here), FULL (disk or
        // max_page_count), CANTOPEN (no descriptor left to open the journal or a temp file),
        // PROTOCOL (a WAL lock race).
        5 | 6 | 7 | 10 | 13 | 14 | 15 => ErrorClass::Transient,
        // TOOBIG (a value over SQLITE_MAX_LENGTH), CONSTRAINT, MISMATCH, RANGE.
        18 | 19 | 20 | 25 => ErrorClass::Data,
        _ => ErrorClass::Other,
    }
}

/// Postgres SQLSTATEs.
pub fn postgres_class(code: &str) -> ErrorClass {
    match code {
        // Connection exceptions; admin shutdown, crash shutdown, cannot connect now.
        c if c.starts_with("08") => ErrorClass::Transient,
        "57P01" | "57P02" | "57P03" => ErrorClass::Transient,
        // Insufficient resources: disk full (53100), out of memory (53200), too many
        // connections (53300), ...
        c if c.starts_with("53") => ErrorClass::Transient,
        // Serialization failure, deadlock, lock not available, query canceled (statement
        // timeout), I/O error.
        "40001" | "40P01" | "55P03" | "57014" | "58030" => ErrorClass::Transient,
        // Data exceptions (22021: a NUL or invalid byte in text; 22001: too long; ...),
        // integrity constraints, program limits (54000: an index row over the btree maximum).
        c if c.starts_with("22") || c.starts_with("23") || c.starts_with("54") => ErrorClass::Data,
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_nul_in_text_is_a_data_error_not_sqlite_busy() {
        // 22021 & 0xff == 5 (SQLITE_BUSY): the two code spaces must never be mixed.
        assert_eq!(22021 & 0xff, 5);
        assert_eq!(postgres_class("22021"), ErrorClass::Data);
        assert_eq!(sqlite_class(5), ErrorClass::Transient);
    }

    #[test]
    fn each_backend_has_its_transient_and_data_codes() {
        for code in [5, 261, 6, 13, 14, 10, 3338] {
            assert_eq!(sqlite_class(code), ErrorClass::Transient, "sqlite {code}");
        }
        for code in [19, 2067, 18, 20] {
            assert_eq!(sqlite_class(code), ErrorClass::Data, "sqlite {code}");
        }
        assert_eq!(sqlite_class(1), ErrorClass::Other);
        for code in ["08006", "57P01", "53100", "53300", "40001", "40P01"] {
            assert_eq!(postgres_class(code), ErrorClass::Transient, "postgres {code}");
        }
        for code in ["22021", "22P05", "22001", "23505", "54000"] {
            assert_eq!(postgres_class(code), ErrorClass::Data, "postgres {code}");
        }
        for code in ["42P01", "XX000"] {
            assert_eq!(postgres_class(code), ErrorClass::Other, "postgres {code}");
        }
    }
}
