-- Same-second order of two snapshots of one subscription or invoice, read from the objects
-- (period, status, own timestamps, content): compared after the event time and before the
-- event id. Rows written before this column keep '' and lose a tie to any new snapshot.
ALTER TABLE subscriptions ADD COLUMN src_tie TEXT NOT NULL DEFAULT '';
ALTER TABLE invoices ADD COLUMN src_tie TEXT NOT NULL DEFAULT '';
