-- The executor's outbox: the reports of an intent are stored when it is marked sent, so a restart re-publishes
-- them (never executes the intent again) until the broker acknowledged them (state delivered).
ALTER TABLE executor_journal ADD COLUMN IF NOT EXISTS reports jsonb;

-- Paper GTC/GTD orders resting on the book: they fill as the books topic moves and end at their expiry, each
-- change stored with its reports (the outbox) before they are published.
CREATE TABLE IF NOT EXISTS paper_resting_orders (
    intent_id  text PRIMARY KEY,
    order_id   text        NOT NULL,
    asset      text        NOT NULL,
    state      jsonb       NOT NULL,
    outbox     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    open       boolean     NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS paper_resting_open ON paper_resting_orders (intent_id) WHERE open;
