-- The read models' JSON documents are stored as text, as insight_facts is
-- since 0006. The projectors write them whole with every change and the
-- readers only ever read them whole (`::text`, parsed by the service);
-- nothing queries inside them. As jsonb, PostgreSQL parses every document
-- on every write: the current row alone carried the file three times
-- (`details` and `contacts` were copies of the keys of the same name in
-- `file`), and each order rewrites the current row, the tier row (inputs and
-- state) and the risk row (reasons and state). The conversion keeps the
-- content: the text is jsonb's rendering of the same document, and the next
-- write of a row replaces it with the projector's own rendering (the same
-- keys and values). For ad-hoc SQL, `file::jsonb` and the like still work.
--
-- `details` and `contacts` are read from `file` now. A row whose `file` is
-- still NULL (written before 0004 and not yet projected again since 0004
-- set customer_current back to 0) shows an empty file until the projector
-- reaches its events, which it must before its checkpoint passes them.

ALTER TABLE customer_current
    DROP COLUMN details,
    DROP COLUMN contacts,
    ALTER COLUMN file TYPE text USING file::text;

ALTER TABLE customer_tier
    ALTER COLUMN inputs TYPE text USING inputs::text,
    ALTER COLUMN state TYPE text USING state::text;

ALTER TABLE customer_tier_history
    ALTER COLUMN inputs TYPE text USING inputs::text;

ALTER TABLE customer_risk
    ALTER COLUMN reasons TYPE text USING reasons::text,
    ALTER COLUMN state TYPE text USING state::text;

ALTER TABLE customer_risk_history
    ALTER COLUMN reasons TYPE text USING reasons::text;

ALTER TABLE follow_up_state
    ALTER COLUMN state TYPE text USING state::text;
