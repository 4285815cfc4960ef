-- Sales' list as one read model: every column the list filters and sorts on
-- in one row per customer, so any combination of filters is one index lookup
-- (crates/dossier-projections/src/list.rs; ARCHITECTURE.md, "The list read
-- model").
--
-- Three projectors keep disjoint columns of a row: customer_current the sort
-- keys, `owner`, `region` and `base_facets`; customer_tier `value_tier` and
-- `tier_facets`; customer_risk `risk_facets`. A facet is "<name>:<value>"
-- (kind:company, industry:..., tag:..., q:<search term>, m:<search term not
-- at the start of the name>, importance:..., lifecycle:..., risk:high,
-- signal:overdue_receivables); owner, value tier and region are columns.
-- Each projector writes its rows in one statement per transaction, in
-- customer_id order, so projectors sharing a row wait for each other but
-- never deadlock.
CREATE TABLE customer_list (
    customer_id uuid PRIMARY KEY,
    -- NULL until customer_current has projected the customer.
    archived    boolean,
    -- The display name lowercased (the name sort key; '' without a name).
    -- Byte order, so a name prefix is an index range.
    name_key    text COLLATE "C",
    created_at  timestamptz,
    updated_at  timestamptz,
    owner       text,
    region      text,
    base_facets text[],
    -- Kept by customer_tier.
    value_tier  text,
    tier_facets text[],
    risk_facets text[],
    facets      text[] GENERATED ALWAYS AS (
        coalesce(base_facets, '{}') || coalesce(tier_facets, '{}') || coalesce(risk_facets, '{}')
    ) STORED
);
-- A small pending list: GIN defers insertions to a list that the writer
-- that overflows it merges; 512 kB keeps that merge short (projection lag).
CREATE INDEX customer_list_facets ON customer_list USING gin (facets) WITH (gin_pending_list_limit = 512);
CREATE INDEX customer_list_updated ON customer_list (archived, updated_at, customer_id);
CREATE INDEX customer_list_created ON customer_list (archived, created_at, customer_id);
CREATE INDEX customer_list_name ON customer_list (archived, name_key, customer_id);
-- Owner, value tier and region, the filters sales combine most ("my A-tier
-- customers in East China"), are columns with ordered indexes, newest first:
-- a combination walks the rarest in order instead of intersecting large GIN
-- posting lists (which costs tens of milliseconds at a million customers).
CREATE INDEX customer_list_owner ON customer_list (archived, owner, updated_at, customer_id);
CREATE INDEX customer_list_tier ON customer_list (archived, value_tier, updated_at, customer_id);
CREATE INDEX customer_list_region ON customer_list (archived, region, updated_at, customer_id);
CREATE INDEX customer_list_owner_tier_region
    ON customer_list (archived, owner, value_tier, region, updated_at, customer_id);

-- customer_current no longer serves the list: its list and search indexes
-- only slowed the projector. What remains are the lookups of single
-- customers and of duplicates; with no index on the columns every event
-- changes, its updates can stay on the same page (HOT).
DROP INDEX customer_current_owner;
DROP INDEX customer_current_region;
DROP INDEX customer_current_search;
DROP INDEX customer_current_updated;
DROP INDEX customer_current_created;
DROP INDEX customer_current_name;
DROP INDEX customer_current_tags;
DROP INDEX customer_current_industry;
ALTER TABLE customer_current SET (fillfactor = 85);

-- The three projectors rebuild from the start so that every customer gets its
-- row (pre-release: read models are empty until they catch up; `dossier
-- projections status` shows the progress).
DELETE FROM customer_current;
DELETE FROM customer_tier;
DELETE FROM customer_tier_history;
DELETE FROM customer_risk;
DELETE FROM customer_risk_history;
DELETE FROM insight_facts WHERE projection IN ('customer_tier', 'customer_risk');
DELETE FROM insight_state WHERE projection IN ('customer_tier', 'customer_risk');
UPDATE projection_checkpoints SET seq = 0, updated_at = now()
WHERE name IN ('customer_current', 'customer_tier', 'customer_risk');

GRANT SELECT, INSERT, UPDATE, DELETE ON customer_list TO dossier_app;
