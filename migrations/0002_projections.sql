-- Read models built by projector tasks from the log. Each projector commits its
-- checkpoint in the same transaction as its read-model writes.

CREATE TABLE projection_checkpoints (
    name       text        PRIMARY KEY,
    seq        bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The row exists from the start, so the runner's FOR UPDATE always has a row
-- to lock and two steps can never both apply the first batch.
INSERT INTO projection_checkpoints (name, seq) VALUES ('customer_current', 0);

-- Current state of each customer, with sealed personal fields decrypted.
CREATE TABLE customer_current (
    customer_id  uuid        PRIMARY KEY,
    kind         text        NOT NULL,
    display_name text,
    owner        text,
    region       text,
    industry     text,
    archived     boolean     NOT NULL DEFAULT false,
    erased       boolean     NOT NULL DEFAULT false,
    details      jsonb       NOT NULL,
    contacts     jsonb       NOT NULL,
    version      bigint      NOT NULL,
    last_seq     bigint      NOT NULL,
    last_hash    bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX customer_current_owner ON customer_current (owner, customer_id);
CREATE INDEX customer_current_region ON customer_current (region, customer_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON projection_checkpoints TO dossier_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON customer_current TO dossier_app;
