-- The search terms (`q:` and `m:` facets, ~40 per company) move out of
-- customer_list into a table of their own. customer_list's row changes with
-- every event (`updated_at`, an indexed column, so never a HOT update), and
-- each such update inserted every facet of the row into the GIN index again:
-- ~45 entries per event, the largest cost of the customer_current projector
-- (measured: 2.7k events/s with the terms in the list, 4.2-4.9k without).
-- Terms change only with the name, phone, e-mail or credit code; the
-- projector rewrites a customer_search row only then.
CREATE TABLE customer_search (
    customer_id uuid PRIMARY KEY,
    -- customer_list.name_key, for the long-query check (substring of the name).
    name_key    text COLLATE "C" NOT NULL,
    terms       text[] NOT NULL
);

-- `m:` entries are kept for terms of one or two characters only: no query
-- looks up a longer one (phone numbers, e-mails, codes were ~6 unique keys
-- per customer, the bulk of the index).
INSERT INTO customer_search (customer_id, name_key, terms)
SELECT customer_id, coalesce(name_key, ''),
       ARRAY(SELECT f FROM unnest(base_facets) AS f
             WHERE f LIKE 'q:%' OR (f LIKE 'm:%' AND char_length(f) <= 4))
FROM customer_list
WHERE base_facets IS NOT NULL;

UPDATE customer_list
SET base_facets = ARRAY(SELECT f FROM unnest(base_facets) AS f
                        WHERE f NOT LIKE 'q:%' AND f NOT LIKE 'm:%')
WHERE base_facets IS NOT NULL;

-- Small pending list, as for customer_list_facets: every search scans it.
CREATE INDEX customer_search_terms ON customer_search USING gin (terms) WITH (gin_pending_list_limit = 512);

GRANT SELECT, INSERT, UPDATE, DELETE ON customer_search TO dossier_app;
