-- Trades, decisions, intents, orders and order events; every table keyed so that re-delivery changes nothing.
CREATE TABLE IF NOT EXISTS trades (
    dedup_key        text PRIMARY KEY,
    source           text        NOT NULL,
    feed_type        text,
    received_at_ms   bigint      NOT NULL,
    proxy_wallet     text        NOT NULL,
    side             text        NOT NULL,
    asset            text        NOT NULL,
    condition_id     text        NOT NULL,
    size             numeric     NOT NULL,
    price            numeric     NOT NULL,
    trade_time       timestamptz NOT NULL,
    transaction_hash text        NOT NULL,
    outcome          text,
    outcome_index    integer,
    slug             text,
    event_slug       text,
    title            text,
    name             text,
    pseudonym        text,
    fee              numeric,
    inserted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS trades_wallet_time ON trades (proxy_wallet, trade_time);
CREATE INDEX IF NOT EXISTS trades_received ON trades (received_at_ms);

CREATE TABLE IF NOT EXISTS decisions (
    decision_id    text PRIMARY KEY,
    wallet_id      text    NOT NULL,
    dedup_key      text    NOT NULL,
    trader         text    NOT NULL,
    asset          text    NOT NULL,
    condition_id   text    NOT NULL,
    side           text    NOT NULL,
    leader_price   numeric NOT NULL,
    leader_size    numeric NOT NULL,
    action         text    NOT NULL,
    reason         text    NOT NULL,
    detail         text    NOT NULL,
    size           numeric,
    limit_price    numeric,
    available_size numeric,
    received_at_ms bigint  NOT NULL,
    decided_at_ms  bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_wallet_reason ON decisions (wallet_id, reason);
CREATE INDEX IF NOT EXISTS decisions_received ON decisions (received_at_ms);

CREATE TABLE IF NOT EXISTS order_intents (
    intent_id      text PRIMARY KEY,
    wallet_id      text    NOT NULL,
    mode           text    NOT NULL,
    dedup_key      text    NOT NULL,
    asset          text    NOT NULL,
    condition_id   text    NOT NULL,
    side           text    NOT NULL,
    size           numeric NOT NULL,
    limit_price    numeric NOT NULL,
    order_type     text    NOT NULL,
    expiry_secs    integer,
    tick_size      numeric NOT NULL,
    neg_risk       boolean NOT NULL,
    received_at_ms bigint  NOT NULL,
    created_at_ms  bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_received ON order_intents (received_at_ms);

-- One row per order, at its latest state: an event only moves it forward (higher sequence).
CREATE TABLE IF NOT EXISTS orders (
    order_id       text PRIMARY KEY,
    intent_id      text    NOT NULL UNIQUE,
    wallet_id      text    NOT NULL,
    mode           text    NOT NULL,
    status         text    NOT NULL,
    side           text    NOT NULL,
    asset          text    NOT NULL,
    size           numeric NOT NULL,
    limit_price    numeric NOT NULL,
    matched_size   numeric NOT NULL,
    average_price  numeric,
    sequence       integer NOT NULL,
    received_at_ms bigint  NOT NULL,
    sent_at_ms     bigint  NOT NULL,
    updated_at_ms  bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_wallet_status ON orders (wallet_id, status);

CREATE TABLE IF NOT EXISTS order_events (
    event_id       text PRIMARY KEY,
    order_id       text    NOT NULL,
    intent_id      text    NOT NULL,
    wallet_id      text    NOT NULL,
    event_type     text    NOT NULL,
    sequence       integer NOT NULL,
    status         text    NOT NULL,
    matched_size   numeric NOT NULL,
    average_price  numeric,
    released_usdc  numeric,
    detail         text    NOT NULL,
    received_at_ms bigint  NOT NULL,
    sent_at_ms     bigint  NOT NULL,
    occurred_at_ms bigint  NOT NULL
);
CREATE INDEX IF NOT EXISTS order_events_order ON order_events (order_id, sequence);

-- The executor's claim on each intent, written before anything is sent: one order per intent, ever.
CREATE TABLE IF NOT EXISTS executor_journal (
    intent_id   text PRIMARY KEY,
    order_id    text        NOT NULL,
    mode        text        NOT NULL,
    state       text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
