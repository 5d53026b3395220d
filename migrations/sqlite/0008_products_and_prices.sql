-- Stripe's products and prices as last seen (product.* / price.* events, `holdfast sync`):
-- what a plan is called and costs, for the pages that name plans and for the metrics.
-- Applied only when the event is newer than what is stored (`src_created`).
CREATE TABLE products (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT,
    active       INTEGER NOT NULL CHECK (active IN (0, 1)),
    deleted      INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    src_created  BIGINT NOT NULL
);

CREATE TABLE prices (
    id              TEXT PRIMARY KEY NOT NULL,
    product         TEXT,
    nickname        TEXT,
    currency        TEXT,
    unit_amount     BIGINT,
    recurring_interval TEXT,
    interval_count  BIGINT,
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    deleted         INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    src_created     BIGINT NOT NULL
);
CREATE INDEX prices_product ON prices (product);
