//! Many rows in one SQLite statement: `VALUES (…), (…), …`, a placeholder per value. sqlx
//! runs each SQLite statement on the connection's worker thread and hands the result back,
//! two thread wake-ups per statement; a projector pass that queued one email per statement
//! spent most of its reaction time in those hand-offs. The statements come in a few sizes
//! only (powers of two up to [`MOST_ROWS`]), so sqlx's per-connection cache of prepared
//! statements keeps them all.

/// Rows in the largest statement: 64 rows of a dozen values stay far below SQLite's limit on
/// placeholders (32,766).
pub(crate) const MOST_ROWS: usize = 64;

/// Sizes of the statements that write `n` rows: as many of [`MOST_ROWS`] as fit, then the
/// rest by powers of two (at most 7 statements more).
fn statement_sizes(n: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(MOST_ROWS, n / MOST_ROWS);
    let rest = n % MOST_ROWS;
    let parts = (0..usize::BITS).rev().map(|bit| 1usize << bit).filter(move |size| rest & size != 0);
    full.chain(parts)
}

/// `rows` in as few statements as [`statement_sizes`] allows: each statement's SQL with the
/// rows whose values it takes, in order.
pub(crate) fn statements<'r, T>(
    rows: &'r [T],
    head: &'static str,
    row: &'static str,
    tail: &'static str,
) -> impl Iterator<Item = (sqlx::AssertSqlSafe<String>, &'r [T])> {
    let mut rest = rows;
    statement_sizes(rows.len()).map(move |size| {
        let (chunk, later) = rest.split_at(size);
        rest = later;
        (statement(head, row, size, tail), chunk)
    })
}

/// `head`, then `row` `rows` times separated by commas, then `tail`. Safe to run: callers
/// pass constants of their own (the values go in placeholders), never input.
fn statement(head: &'static str, row: &'static str, rows: usize, tail: &'static str) -> sqlx::AssertSqlSafe<String> {
    let mut sql = String::with_capacity(head.len() + (row.len() + 2) * rows + tail.len());
    sql.push_str(head);
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql.push_str(tail);
    sqlx::AssertSqlSafe(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_cover_every_row_once_in_few_statements() {
        for n in 0..300 {
            let sizes: Vec<usize> = statement_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}: {sizes:?}");
            assert!(sizes.iter().all(|s| s.is_power_of_two() && *s <= MOST_ROWS), "{n}: {sizes:?}");
            assert!(sizes.len() <= n / MOST_ROWS + 6, "{n}: {sizes:?}");
        }
        assert_eq!(statement_sizes(130).collect::<Vec<_>>(), vec![64, 64, 2]);
    }

    #[test]
    fn statements_take_the_rows_in_order() {
        let rows: Vec<u32> = (0..70).collect();
        let parts: Vec<(String, Vec<u32>)> =
            statements(&rows, "V ", "(?)", "").map(|(sql, chunk)| (sql.0, chunk.to_vec())).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.iter().flat_map(|(_, c)| c.clone()).collect::<Vec<_>>(), rows);
        assert_eq!(parts[2], ("V (?), (?)".to_string(), vec![68, 69]));
    }

    #[test]
    fn a_statement_repeats_its_row() {
        assert_eq!(
            statement("INSERT INTO t VALUES ", "(?, 1)", 3, " ON CONFLICT DO NOTHING").0,
            "INSERT INTO t VALUES (?, 1), (?, 1), (?, 1) ON CONFLICT DO NOTHING"
        );
    }
}
