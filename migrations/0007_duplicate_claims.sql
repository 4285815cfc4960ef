-- Duplicate detection on create reads customer_current, which trails the
-- log by the projection lag: two registrations of the same phone a moment
-- apart (two clerks, a CSV imported in parallel) both passed. Now every
-- registration first takes advisory locks on its identifiers, checks, and
-- records a claim here before it appends: the next registration with the
-- same identifier waits for the lock and then finds the claim until
-- customer_current has projected the claimant (which deletes its claims).
--
-- `tag` is a blind index (HMAC-SHA-256 under a key derived from the master
-- key, crates/dossier-seal) of field and normalised value: identifiers are
-- matched without being stored. A claim whose registration never reached
-- the log is ignored (no stream) and deleted once seen.
CREATE TABLE duplicate_claims (
    tag         bytea       NOT NULL,
    customer_id uuid        NOT NULL,
    field       text        NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tag, customer_id)
);
CREATE INDEX duplicate_claims_customer ON duplicate_claims (customer_id);

GRANT SELECT, INSERT, DELETE ON duplicate_claims TO dossier_app;
