-- Live orders the executor still reconciles with the venue (placed and not settled, or waiting to be placed
-- again after the venue deferred them): their state and the reports still to deliver about them (the outbox),
-- so a restarted executor takes every one of them up again and publishes what the last run could not.
CREATE TABLE IF NOT EXISTS live_orders (
    intent_id  text PRIMARY KEY,
    order_id   text        NOT NULL,
    wallet_id  text        NOT NULL,
    state      jsonb       NOT NULL,
    outbox     jsonb       NOT NULL DEFAULT '[]'::jsonb,
    open       boolean     NOT NULL DEFAULT true,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS live_orders_open ON live_orders (intent_id) WHERE open;
