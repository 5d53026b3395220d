-- The dashboard's MRR by plan and retention by acquisition channel, maintained where the
-- other figures are: the projector rewrites a customer's rows whenever it recomputes the
-- customer, so the page sums a narrow table instead of reading every live subscription's
-- items and parsing every customer's event JSON.

-- The customer's metadata object (the acquisition channel is one of its keys).
ALTER TABLE customers ADD COLUMN metadata TEXT;
UPDATE customers SET metadata = (SELECT CASE WHEN json_valid(e.payload)
    AND json_type(e.payload, '$.data.object.metadata') = 'object'
    THEN json_extract(e.payload, '$.data.object.metadata') END FROM stripe_events e WHERE e.id = customers.src_event_id);

-- Each live subscription's MRR, shared among its items by their list prices (a subscription
-- without items is one share with no price), under the key its figures are kept by.
CREATE TABLE metric_plan_shares (
    customer         TEXT NOT NULL,
    subscription_id  TEXT NOT NULL,
    currency         TEXT NOT NULL,
    price_id         TEXT,
    product          TEXT,
    mrr              DOUBLE PRECISION NOT NULL
);
CREATE INDEX metric_plan_shares_customer ON metric_plan_shares (customer);
CREATE INDEX metric_plan_shares_plan ON metric_plan_shares (currency, price_id, product, mrr);

CREATE TABLE metric_acquisition (
    customer  TEXT PRIMARY KEY NOT NULL,
    metadata  TEXT,
    started   BIGINT,
    ended     BIGINT,
    live      BIGINT NOT NULL
);

-- Filled for the existing history with the statements the projector runs per customer.
INSERT INTO metric_plan_shares (customer, subscription_id, currency, price_id, product, mrr)
SELECT k, id, cur, price_id, product,
    CASE WHEN n = 0 THEN base_mrr WHEN total > 0 THEN base_mrr * list / total ELSE base_mrr / n END
FROM (SELECT k, id, cur, base_mrr, price_id, product, list, SUM(list) OVER (PARTITION BY id) AS total,
        COUNT(item_of) OVER (PARTITION BY id) AS n
    FROM (SELECT COALESCE(s.customer, s.id) AS k, s.id, lower(COALESCE(s.currency, '')) AS cur, s.base_mrr,
            i.subscription_id AS item_of, i.price_id, i.product,
            CAST(COALESCE(i.unit_amount, 0) AS DOUBLE PRECISION) * i.quantity / (CASE i.recurring_interval
                WHEN 'year' THEN 12.0 * months WHEN 'week' THEN months * 7.0 / (365.25 / 12.0)
                WHEN 'day' THEN months / (365.25 / 12.0) ELSE months END) AS list
        FROM subscriptions s LEFT JOIN (SELECT *, CASE WHEN COALESCE(interval_count, 1) < 1 THEN 1.0
                ELSE CAST(COALESCE(interval_count, 1) AS DOUBLE PRECISION) END AS months FROM subscription_items) i
            ON i.subscription_id = s.id
        WHERE s.status IN ('active', 'past_due', 'unpaid')) a) b;

INSERT INTO metric_acquisition (customer, metadata, started, ended, live)
SELECT c.id, MAX(c.metadata), MIN(COALESCE(s.start_date, s.created)), MAX(COALESCE(s.ended_at, s.canceled_at)),
    MAX(CASE WHEN s.status IN ('active', 'past_due', 'unpaid', 'trialing') THEN 1 ELSE 0 END)
FROM customers c JOIN subscriptions s ON s.customer = c.id GROUP BY c.id;
