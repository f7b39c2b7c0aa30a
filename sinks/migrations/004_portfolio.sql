-- Positions, PnL and settlement (issue 10). Money is numeric (exact decimals), times are epoch milliseconds.
-- `version` is the wallet state's version (it grows with every event of the wallet): a row is replaced only by
-- a newer version, so a re-delivered or late message never rolls a row back.

-- One row per copy wallet: its latest snapshot (from polycopy.wallets.snapshots.v1).
-- available_usdc + reserved_usdc + deployed_usdc = capital_usdc + realised_pnl_usdc.
CREATE TABLE IF NOT EXISTS wallet_snapshots (
    wallet_id                 text PRIMARY KEY,
    mode                      text    NOT NULL, -- paper or live
    capital_usdc              numeric NOT NULL, -- configured capital
    available_usdc            numeric NOT NULL, -- what new copies can use
    reserved_usdc             numeric NOT NULL, -- held for open BUY orders
    deployed_usdc             numeric NOT NULL, -- what the open positions cost
    realised_pnl_usdc         numeric NOT NULL, -- sales, settlements and fees, all time
    unrealised_pnl_usdc       numeric NOT NULL, -- open positions at their marks minus their cost
    fees_usdc                 numeric NOT NULL, -- fees the venue charged, all time (inside realised)
    redeemable_usdc           numeric NOT NULL, -- live: what resolved positions pay once redeemed
    day                       text    NOT NULL, -- UTC day (YYYY-MM-DD) of the daily figures
    daily_realised_pnl_usdc   numeric NOT NULL,
    daily_unrealised_pnl_usdc numeric NOT NULL, -- change of the open positions' marked value that day
    daily_loss_usdc           numeric NOT NULL, -- what max_daily_loss_usdc is compared with
    settled_positions         integer NOT NULL, -- positions paid out by a resolution, all time
    winning_positions         integer NOT NULL, -- of those, the ones that made money
    win_rate                  numeric,          -- winning / settled; NULL before the first settlement
    open_positions            integer NOT NULL,
    open_orders               integer NOT NULL,
    orders                    jsonb   NOT NULL, -- the open orders (intent_id, order_id, status, side, ...)
    version                   bigint  NOT NULL,
    as_of_ms                  bigint  NOT NULL
);

-- One row per (copy wallet, outcome token) ever held: open, redeemable (live, resolved, not yet redeemed),
-- settled (paid out by a resolution) or closed (sold out). Written from polycopy.wallets.positions.v1 (every
-- change) and from the snapshots (the marks of open positions).
CREATE TABLE IF NOT EXISTS positions (
    wallet_id           text    NOT NULL,
    asset               text    NOT NULL, -- the outcome token id
    condition_id        text    NOT NULL, -- its market
    status              text    NOT NULL, -- open | redeemable | settled | closed
    shares              numeric NOT NULL, -- held (settled: what paid out; closed: 0)
    cost_usdc           numeric NOT NULL, -- what the shares held cost
    average_price       numeric NOT NULL,
    mark_price          numeric,          -- latest trade price or book mid the wallet saw, or the payout
    marked_at_ms        bigint,
    unrealised_pnl_usdc numeric NOT NULL,
    realised_pnl_usdc   numeric NOT NULL, -- everything this token made: sales, payout, fees
    payout              numeric,          -- per share, once the market resolved (1 winner, 0 loser)
    version             bigint  NOT NULL,
    updated_at_ms       bigint  NOT NULL,
    PRIMARY KEY (wallet_id, asset)
);
CREATE INDEX IF NOT EXISTS positions_wallet_status ON positions (wallet_id, status);

-- How markets resolved (from polycopy.reference.resolutions.v1).
CREATE TABLE IF NOT EXISTS market_resolutions (
    condition_id     text PRIMARY KEY,
    payouts          jsonb   NOT NULL, -- {"<token id>": "1", "<token id>": "0"}
    winning_token_id text,
    winning_outcome  text,
    question         text    NOT NULL,
    neg_risk         boolean NOT NULL,
    resolved_at_ms   bigint  NOT NULL,
    source           text    NOT NULL  -- gamma | market_channel | import
);
