-- Sales' customer list: filter, sort, keyset pagination and search.
--
-- Search works on `search_terms`, normalised terms computed by the projector
-- (crates/dossier-projections/src/list.rs, `search_terms`): every character and
-- every 2-character substring of the name plus its whole words, the phone's
-- last 4 digits and full digits, the e-mail and its local part, the credit
-- code; all lowercase. pg_trgm cannot serve 1-2 character queries (a Chinese
-- surname), this can, through one GIN index.
ALTER TABLE customer_current
    ADD COLUMN phone        text,
    ADD COLUMN email        text,
    ADD COLUMN credit_code  text,
    ADD COLUMN search_terms text[] NOT NULL DEFAULT '{}';

CREATE INDEX customer_current_search ON customer_current USING gin (search_terms);
CREATE INDEX customer_current_updated ON customer_current (updated_at, customer_id);
CREATE INDEX customer_current_created ON customer_current (created_at, customer_id);
CREATE INDEX customer_current_name ON customer_current ((coalesce(display_name, '')), customer_id);

-- Re-project from the start so existing rows get the new columns. Rows stay
-- in place (re-applying events is harmless), so reads keep working meanwhile.
UPDATE projection_checkpoints SET seq = 0, updated_at = now() WHERE name = 'customer_current';
