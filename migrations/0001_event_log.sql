-- The append-only, hash-chained event log and the small tables its writer keeps.
-- Format of `body` and `hash`: docs/chain-format.md (dossier-chain/1).

CREATE TABLE events (
    seq              bigint      PRIMARY KEY,
    event_id         uuid        NOT NULL UNIQUE,
    stream_id        uuid        NOT NULL,
    stream_version   bigint      NOT NULL CHECK (stream_version >= 1),
    event_type       text        NOT NULL,
    recorded_at      timestamptz NOT NULL,
    effective_at     timestamptz NOT NULL,
    actor_id         uuid        NOT NULL,
    prev_hash        bytea       NOT NULL CHECK (length(prev_hash) = 32),
    stream_prev_hash bytea       NOT NULL CHECK (length(stream_prev_hash) = 32),
    hash             bytea       NOT NULL CHECK (length(hash) = 32),
    -- The exact bytes that were hashed (canonical JSON). Everything above is an
    -- indexed copy; readers decode the body.
    body             bytea       NOT NULL,
    UNIQUE (stream_id, stream_version)
);
-- recorded_at never decreases along seq, so a BRIN index answers "the last seq
-- recorded by T" for almost nothing per insert. Every index here is paid for on
-- the serial append path, so the log has only the ones reads need.
CREATE INDEX events_recorded_at ON events USING brin (recorded_at);

-- One row: the last seq and hash. Writers lock it, so commit order = seq order.
CREATE TABLE chain_head (
    id          boolean     PRIMARY KEY DEFAULT true CHECK (id),
    seq         bigint      NOT NULL,
    hash        bytea       NOT NULL,
    recorded_at timestamptz NOT NULL
);
INSERT INTO chain_head (id, seq, hash, recorded_at)
VALUES (true, 0, decode(repeat('00', 32), 'hex'), '1970-01-01T00:00:00Z');

-- Each customer's current version and last hash, so a write never replays history.
CREATE TABLE stream_heads (
    stream_id uuid   PRIMARY KEY,
    version   bigint NOT NULL,
    hash      bytea  NOT NULL
);

CREATE TABLE idempotency_keys (
    key          text        PRIMARY KEY,
    request_hash bytea       NOT NULL,
    stream_id    uuid        NOT NULL,
    first_seq    bigint      NOT NULL,
    last_seq     bigint      NOT NULL,
    version      bigint      NOT NULL,
    hash         bytea       NOT NULL,
    recorded_at  timestamptz NOT NULL
);

-- Per-customer data keys, wrapped by the master key. Destroying a key
-- (crypto-shredding) erases the customer's sealed personal data.
CREATE TABLE customer_keys (
    stream_id     uuid        PRIMARY KEY,
    wrapped_key   bytea,
    master_key_id text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    destroyed_at  timestamptz
);

CREATE TABLE principals (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    role       text        NOT NULL CHECK (role IN ('sales', 'manager', 'compliance', 'auditor', 'admin')),
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- Append-only, enforced by the database: no UPDATE, DELETE or TRUNCATE of the log.
CREATE FUNCTION events_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();

-- Appends one batch in one statement (so one round trip and one commit). The
-- caller computed seqs and hashes from the heads it believes current; this
-- function takes the chain-head lock and refuses if either the chain head or a
-- stream head has moved (another writer got there first): SQLSTATE DS001 / DS002.
CREATE FUNCTION dossier_append_batch(
    p_head_seq bigint, p_head_hash bytea, p_head_recorded_at timestamptz,
    p_seq bigint[], p_event_id uuid[], p_stream_id uuid[], p_stream_version bigint[],
    p_event_type text[], p_recorded_at timestamptz[], p_effective_at timestamptz[],
    p_actor_id uuid[], p_prev_hash bytea[], p_stream_prev_hash bytea[], p_hash bytea[],
    p_body bytea[],
    p_head_stream uuid[], p_head_prev_version bigint[], p_head_version bigint[], p_head_hash_new bytea[],
    p_idem_key text[], p_idem_request bytea[], p_idem_stream uuid[], p_idem_first bigint[],
    p_idem_last bigint[], p_idem_version bigint[], p_idem_hash bytea[]
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head record;
    n int := cardinality(p_seq);
    stale text;
BEGIN
    SELECT seq, hash, recorded_at INTO head FROM chain_head WHERE id FOR UPDATE;
    IF head.seq <> p_head_seq OR head.hash <> p_head_hash OR head.recorded_at <> p_head_recorded_at THEN
        RAISE EXCEPTION 'chain head moved to %', head.seq USING ERRCODE = 'DS001';
    END IF;

    -- A correlated lookup per stream: a join here would get a generic plan
    -- (hash join over all of stream_heads) once PL/pgSQL caches it.
    SELECT string_agg(s.stream_id::text, ',') INTO stale
    FROM unnest(p_head_stream, p_head_prev_version) AS s(stream_id, prev_version)
    WHERE s.prev_version <> coalesce(
        (SELECT h.version FROM stream_heads h WHERE h.stream_id = s.stream_id), 0);
    IF stale IS NOT NULL THEN
        RAISE EXCEPTION 'stream heads moved' USING ERRCODE = 'DS002', DETAIL = stale;
    END IF;

    INSERT INTO events (seq, event_id, stream_id, stream_version, event_type, recorded_at,
                        effective_at, actor_id, prev_hash, stream_prev_hash, hash, body)
    SELECT * FROM unnest(p_seq, p_event_id, p_stream_id, p_stream_version, p_event_type,
                         p_recorded_at, p_effective_at, p_actor_id, p_prev_hash,
                         p_stream_prev_hash, p_hash, p_body);

    INSERT INTO stream_heads (stream_id, version, hash)
    SELECT * FROM unnest(p_head_stream, p_head_version, p_head_hash_new)
    ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, hash = excluded.hash;

    INSERT INTO idempotency_keys (key, request_hash, stream_id, first_seq, last_seq, version, hash, recorded_at)
    SELECT k, r, s, f, l, v, h, p_recorded_at[n]
    FROM unnest(p_idem_key, p_idem_request, p_idem_stream, p_idem_first, p_idem_last,
                p_idem_version, p_idem_hash) AS i(k, r, s, f, l, v, h);

    UPDATE chain_head SET seq = p_seq[n], hash = p_hash[n], recorded_at = p_recorded_at[n] WHERE id;
    PERFORM pg_notify('dossier_events', p_seq[n]::text);
END
$$;

-- The service runs as dossier_app: it may read and append to the log, never change it.
-- It may log in (without a password: the server's authentication rules
-- decide); where it cannot, the service falls back to SET ROLE.
DO $$
BEGIN
    CREATE ROLE dossier_app LOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
DO $$
BEGIN
    ALTER ROLE dossier_app LOGIN;
EXCEPTION WHEN insufficient_privilege THEN NULL;
END
$$;
GRANT SELECT, INSERT ON events TO dossier_app;
GRANT SELECT, UPDATE ON chain_head TO dossier_app;
GRANT SELECT, INSERT, UPDATE ON stream_heads TO dossier_app;
GRANT SELECT, INSERT ON idempotency_keys TO dossier_app;
GRANT SELECT, INSERT, UPDATE ON customer_keys TO dossier_app;
GRANT SELECT, INSERT, UPDATE ON principals TO dossier_app;
GRANT EXECUTE ON FUNCTION dossier_append_batch TO dossier_app;
