-- The book each decision's gate saw (a state on polycopy.books.v1), and the levels each intent could take at its
-- limit (what paper execution fills against), so a decision can be traced to its liquidity from SQL.
ALTER TABLE decisions ADD COLUMN IF NOT EXISTS book_id text;
ALTER TABLE order_intents ADD COLUMN IF NOT EXISTS book_levels jsonb;
