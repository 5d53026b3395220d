-- Stripe's coupons as last seen (coupon.* events, `holdfast sync`, and a coupon fetched once
-- for a discount naming one never seen): the terms discounts name by id. Applied only when
-- the event is newer than what is stored (`src_created`).
CREATE TABLE coupons (
    id                   TEXT PRIMARY KEY NOT NULL,
    percent_off          DOUBLE PRECISION,
    amount_off           BIGINT,
    currency             TEXT,
    duration             TEXT,
    duration_in_months   BIGINT,
    -- JSON array of product ids (`applies_to.products`); NULL: every product.
    applies_to_products  TEXT,
    deleted              BOOLEAN NOT NULL,
    src_created          BIGINT NOT NULL
);
