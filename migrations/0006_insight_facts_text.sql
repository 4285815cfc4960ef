-- The insight projectors' facts (crates/dossier-insights/src/facts.rs) are
-- their private working state: written whole after every event, read back
-- whole by the projector, never queried inside by SQL. As jsonb, PostgreSQL
-- parsed every document on write (measured ~30 us per 1.3 kB document, the
-- largest single cost of a full rebuild's writes and three times per event
-- for the running projectors). Text stores what serde wrote. Existing rows
-- are converted in place: the text is jsonb's rendering of the same facts,
-- which parse to exactly the same values; the next write of a customer
-- replaces it. For ad-hoc SQL, `facts::jsonb` still works.
ALTER TABLE insight_facts ALTER COLUMN facts TYPE text USING facts::text;
