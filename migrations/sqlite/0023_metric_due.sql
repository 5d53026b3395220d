-- When each customer's maintained figures stop being exact without a new event (a pause
-- resumes, a discount ends): the scheduler recomputes the customers whose time has passed,
-- found by the index. A customer with no such instant ahead has no row.
CREATE TABLE metric_due (
    customer  TEXT PRIMARY KEY,
    due_at    BIGINT NOT NULL
);
CREATE INDEX metric_due_at ON metric_due (due_at);

-- A batch of recomputed customers reads its discounts by customer, subscription and coupon.
CREATE INDEX discounts_customer ON discounts (customer);
CREATE INDEX discounts_subscription ON discounts (subscription);
CREATE INDEX discounts_coupon ON discounts (coupon_id);
