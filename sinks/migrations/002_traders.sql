-- Leaderboard traders (from polycopy traders sync/import), latest record per wallet.
CREATE TABLE IF NOT EXISTS traders (
    wallet        text PRIMARY KEY,
    name          text,
    rank          integer,
    pnl_usdc      numeric,
    volume_usdc   numeric,
    win_rate      numeric,
    source        text   NOT NULL,
    updated_at_ms bigint NOT NULL
);
