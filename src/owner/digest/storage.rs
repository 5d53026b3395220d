//! What the owner's weekly digest reads: MRR per currency at two instants (from the
//! subscription history), and whether a digest's outbox row exists already.

use std::collections::BTreeMap;

use crate::owner::views::{ListKind, ListRow, Paging};
use crate::store::conn::fetch;
use crate::store::{Store, StoreError};

/// Each subscription's newest history row at `$1`, summed over the paying ones per currency.
const MRR_AT: &str = "SELECT currency, CAST(SUM(base_mrr) AS DOUBLE PRECISION) FROM (SELECT lower(COALESCE(currency, '')) AS currency, \
     base_mrr, status, ROW_NUMBER() OVER (PARTITION BY subscription_id ORDER BY effective_at DESC, src_rank DESC, event_id DESC) AS rn \
     FROM subscription_history WHERE effective_at <= $1) h WHERE rn = 1 AND status IN ('active', 'past_due', 'unpaid') \
     GROUP BY currency ORDER BY currency";
const HAS_KEY: &str = "SELECT COUNT(*) FROM outbox WHERE dedupe_key = $1";

/// Rows of each list a digest reads at most.
const LIST_MAX: i64 = 200;

/// The week's facts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DigestData {
    /// MRR (minor units) per currency at the week's start and end.
    pub mrr_start: BTreeMap<String, f64>,
    pub mrr_end: BTreeMap<String, f64>,
    pub cancellations: Vec<ListRow>,
    pub saves: Vec<ListRow>,
    pub recovered: Vec<ListRow>,
    /// At risk now (not only those who became so this week).
    pub at_risk: Vec<ListRow>,
}

impl Store {
    /// Whether the outbox holds a row under `key` (whatever its status).
    pub async fn outbox_has_key(&self, key: &str) -> Result<bool, StoreError> {
        let (n,) = self.with_conn(async |c| fetch!(c, fetch_one, (i64,), HAS_KEY, key)).await?;
        Ok(n > 0)
    }

    /// MRR per currency at `at`.
    pub async fn mrr_at(&self, at: i64) -> Result<BTreeMap<String, f64>, StoreError> {
        let rows = self.with_conn(async |c| fetch!(c, fetch_all, (String, Option<f64>), MRR_AT, at)).await?;
        Ok(rows.into_iter().filter(|(c, _)| !c.is_empty()).map(|(c, m)| (c, m.unwrap_or(0.0))).collect())
    }

    /// The facts of the week `[from, to)`.
    pub async fn digest_data(&self, from: i64, to: i64, now: i64) -> Result<DigestData, StoreError> {
        let page = Paging { limit: LIST_MAX, offset: 0 };
        let in_week = |rows: Vec<ListRow>| -> Vec<ListRow> {
            rows.into_iter().filter(|r| r.happened_at.is_some_and(|t| t >= from && t < to)).collect()
        };
        Ok(DigestData {
            mrr_start: self.mrr_at(from - 1).await?,
            mrr_end: self.mrr_at(to - 1).await?,
            cancellations: in_week(self.owner_list(ListKind::Cancellations, page, now, "").await?),
            saves: in_week(self.owner_list(ListKind::Saves, page, now, "").await?),
            recovered: in_week(self.owner_list(ListKind::Recovered, page, now, "").await?),
            at_risk: self.owner_list(ListKind::AtRisk, page, now, "").await?,
        })
    }
}
