-- The full customer file in the current-state read model, and the tier, risk
-- and follow-up read models (crates/dossier-projections/src/insight.rs).

-- The whole current document (addresses, tags, credit, receivables, ...), tags
-- as an indexed array for the list filter, and the identifiers duplicate
-- detection looks up.
ALTER TABLE customer_current
    ADD COLUMN file        jsonb,
    ADD COLUMN tags        text[] NOT NULL DEFAULT '{}',
    ADD COLUMN national_id text,
    ADD COLUMN merged_into uuid;

CREATE INDEX customer_current_tags ON customer_current USING gin (tags);
CREATE INDEX customer_current_phone ON customer_current (phone) WHERE phone IS NOT NULL;
CREATE INDEX customer_current_email ON customer_current (lower(email)) WHERE email IS NOT NULL;
CREATE INDEX customer_current_credit_code ON customer_current (credit_code) WHERE credit_code IS NOT NULL;
CREATE INDEX customer_current_national_id ON customer_current (national_id) WHERE national_id IS NOT NULL;
CREATE INDEX customer_current_industry ON customer_current (industry, customer_id);

UPDATE projection_checkpoints SET seq = 0, updated_at = now() WHERE name = 'customer_current';

-- Each insight projector (customer_tier, customer_risk, follow_ups) folds the
-- log into per-customer facts and evaluates them under the rules in force.
-- Its facts, clock and rules are part of its state: a rebuild recomputes them
-- from the log, so incremental and rebuilt read models are identical.
INSERT INTO projection_checkpoints (name, seq) VALUES
    ('customer_tier', 0), ('customer_risk', 0), ('follow_ups', 0);

CREATE TABLE insight_state (
    projection    text PRIMARY KEY,
    -- The latest business date seen: of evaluation runs and of events.
    evaluated_on  date,
    rules_version text,
    rules_text    text,
    rules_seq     bigint
);

CREATE TABLE insight_facts (
    projection  text   NOT NULL,
    customer_id uuid   NOT NULL,
    facts       jsonb  NOT NULL,
    PRIMARY KEY (projection, customer_id)
);

CREATE TABLE customer_tier (
    customer_id       uuid   PRIMARY KEY,
    value_tier        text   NOT NULL,
    importance        text   NOT NULL,
    importance_source text   NOT NULL,
    lifecycle         text   NOT NULL,
    inputs            jsonb  NOT NULL,
    rules_version     text   NOT NULL,
    -- Date of the evaluation that produced this row.
    evaluated_on      date   NOT NULL,
    -- The event whose application last changed the classification.
    changed_seq       bigint NOT NULL,
    -- The whole assessment as the projector compares it.
    state             jsonb  NOT NULL
);
CREATE INDEX customer_tier_tier ON customer_tier (value_tier, customer_id);
CREATE INDEX customer_tier_lifecycle ON customer_tier (lifecycle, customer_id);

CREATE TABLE customer_tier_history (
    customer_id       uuid   NOT NULL,
    seq               bigint NOT NULL,
    value_tier        text   NOT NULL,
    importance        text   NOT NULL,
    importance_source text   NOT NULL,
    lifecycle         text   NOT NULL,
    inputs            jsonb  NOT NULL,
    rules_version     text   NOT NULL,
    evaluated_on      date   NOT NULL,
    PRIMARY KEY (customer_id, seq)
);

CREATE TABLE customer_risk (
    customer_id   uuid   PRIMARY KEY,
    level         text   NOT NULL,
    -- Level as a number for sorting and range filters: low 0 .. critical 3.
    level_rank    smallint NOT NULL,
    signals       text[] NOT NULL,
    reasons       jsonb  NOT NULL,
    rules_version text   NOT NULL,
    evaluated_on  date   NOT NULL,
    changed_seq   bigint NOT NULL,
    state         jsonb  NOT NULL
);
CREATE INDEX customer_risk_level ON customer_risk (level, customer_id);
CREATE INDEX customer_risk_signals ON customer_risk USING gin (signals);

CREATE TABLE customer_risk_history (
    customer_id   uuid   NOT NULL,
    seq           bigint NOT NULL,
    level         text   NOT NULL,
    reasons       jsonb  NOT NULL,
    rules_version text   NOT NULL,
    evaluated_on  date   NOT NULL,
    PRIMARY KEY (customer_id, seq)
);

CREATE TABLE follow_ups (
    customer_id   uuid     NOT NULL,
    kind          text     NOT NULL,
    owner         text,
    due_on        date     NOT NULL,
    urgency       integer  NOT NULL,
    detail        text     NOT NULL,
    evidence      bigint[] NOT NULL,
    rules_version text     NOT NULL,
    evaluated_on  date     NOT NULL,
    -- One complaint_open follow-up per complaint open too long: the evidence
    -- (the complaint's seq) tells them apart; other kinds occur once.
    PRIMARY KEY (customer_id, kind, evidence)
);
-- Each customer's follow-ups as one document: what the projector compares.
CREATE TABLE follow_up_state (
    customer_id   uuid  PRIMARY KEY,
    state         jsonb NOT NULL,
    rules_version text  NOT NULL,
    evaluated_on  date  NOT NULL
);

CREATE INDEX follow_ups_owner ON follow_ups (owner, urgency DESC, due_on, customer_id);
CREATE INDEX follow_ups_urgency ON follow_ups (urgency DESC, due_on, customer_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON insight_state, insight_facts, customer_tier,
    customer_tier_history, customer_risk, customer_risk_history, follow_ups, follow_up_state TO dossier_app;
