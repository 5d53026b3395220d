-- The owner's numbers, maintained as events are projected instead of recomputed from the
-- whole history on every read.

-- What each customer (in each currency) contributes: its per-month rows (as runs of equal
-- months), its cohort and the row it repeats from tail_from on, as JSON. The projector
-- recomputes a customer from its own history and moves the totals by the difference.
CREATE TABLE metric_customers (
    customer     TEXT NOT NULL,
    currency     TEXT NOT NULL,
    first_month  BIGINT NOT NULL,
    figures      TEXT NOT NULL,
    PRIMARY KEY (customer, currency)
);
CREATE INDEX metric_customers_first_month ON metric_customers (first_month);

-- Sums of the customers' rows per currency and month (months since 1970-01).
CREATE TABLE metric_month_totals (
    currency  TEXT NOT NULL,
    month     BIGINT NOT NULL,
    mrr_start DOUBLE PRECISION NOT NULL DEFAULT 0,
    mrr_end DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_new DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_reactivation DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_expansion DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_contraction DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_paused DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_churned DOUBLE PRECISION NOT NULL DEFAULT 0,
    nrr_num DOUBLE PRECISION NOT NULL DEFAULT 0,
    nrr_den DOUBLE PRECISION NOT NULL DEFAULT 0,
    active_start BIGINT NOT NULL DEFAULT 0,
    active_end BIGINT NOT NULL DEFAULT 0,
    new_customers BIGINT NOT NULL DEFAULT 0,
    churned BIGINT NOT NULL DEFAULT 0,
    churned_involuntary BIGINT NOT NULL DEFAULT 0,
    paying_end BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    recovered BIGINT NOT NULL DEFAULT 0,
    lost BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    recovered_amount BIGINT NOT NULL DEFAULT 0,
    lost_amount BIGINT NOT NULL DEFAULT 0,
    unresolved_discounts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, month)
);

-- Sums of the customers' steady rows, by the month they start repeating: a month's figures
-- are its row in metric_month_totals plus every tail that started at or before it.
CREATE TABLE metric_tail_totals (
    currency  TEXT NOT NULL,
    month     BIGINT NOT NULL,
    mrr_start DOUBLE PRECISION NOT NULL DEFAULT 0,
    mrr_end DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_new DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_reactivation DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_expansion DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_contraction DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_paused DOUBLE PRECISION NOT NULL DEFAULT 0,
    mv_churned DOUBLE PRECISION NOT NULL DEFAULT 0,
    nrr_num DOUBLE PRECISION NOT NULL DEFAULT 0,
    nrr_den DOUBLE PRECISION NOT NULL DEFAULT 0,
    active_start BIGINT NOT NULL DEFAULT 0,
    active_end BIGINT NOT NULL DEFAULT 0,
    new_customers BIGINT NOT NULL DEFAULT 0,
    churned BIGINT NOT NULL DEFAULT 0,
    churned_involuntary BIGINT NOT NULL DEFAULT 0,
    paying_end BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    recovered BIGINT NOT NULL DEFAULT 0,
    lost BIGINT NOT NULL DEFAULT 0,
    pending BIGINT NOT NULL DEFAULT 0,
    recovered_amount BIGINT NOT NULL DEFAULT 0,
    lost_amount BIGINT NOT NULL DEFAULT 0,
    unresolved_discounts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, month)
);

-- Cohorts: customers by the month they first became active, and their activity and MRR
-- 1, 3, 6 and 12 months later.
CREATE TABLE metric_cohort_totals (
    currency                 TEXT NOT NULL,
    cohort                   BIGINT NOT NULL,
    customers                BIGINT NOT NULL DEFAULT 0,
    mrr_end_of_cohort_month  DOUBLE PRECISION NOT NULL DEFAULT 0,
    active_1                 BIGINT NOT NULL DEFAULT 0,
    active_3                 BIGINT NOT NULL DEFAULT 0,
    active_6                 BIGINT NOT NULL DEFAULT 0,
    active_12                BIGINT NOT NULL DEFAULT 0,
    mrr_1                    DOUBLE PRECISION NOT NULL DEFAULT 0,
    mrr_3                    DOUBLE PRECISION NOT NULL DEFAULT 0,
    mrr_6                    DOUBLE PRECISION NOT NULL DEFAULT 0,
    mrr_12                   DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (currency, cohort)
);

-- A customer's subscriptions, found by the key metrics group them under.
CREATE INDEX subscription_history_metric_key ON subscription_history ((COALESCE(customer, subscription_id)));

-- built = 0: the tables above do not yet hold the history (an existing database was just
-- migrated); the first start rebuilds them before serving.
CREATE TABLE metric_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    built  BIGINT NOT NULL
);
INSERT INTO metric_state (id, built) VALUES (1, 0);
