-- The event store: an append-only log of events with per-stream revisions and one global order.
-- It lives in its own schema so it can share a database with the read models or live alone.

CREATE SCHEMA IF NOT EXISTS event_store;

CREATE TABLE event_store.events (
  -- The global order ($all). An identity column allocated only while the append lock is held
  -- (see serialize_appends below), so positions become visible in the order they were allocated.
  position bigint GENERATED ALWAYS AS IDENTITY (START WITH 1 CACHE 1) PRIMARY KEY,
  stream_name text NOT NULL CHECK (stream_name <> ''),
  revision bigint NOT NULL CHECK (revision >= 0),
  event_id uuid NOT NULL,
  event_type text NOT NULL CHECK (event_type <> ''),
  -- `json`, not `jsonb`: it keeps the text exactly as written and accepts every string JSON can
  -- carry (jsonb refuses \u0000 and unpaired surrogates, which raw webhook bodies may contain).
  data json NOT NULL,
  metadata json NOT NULL,
  -- Per row, after the lock: later positions never carry earlier times.
  created timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT events_stream_revision_key UNIQUE (stream_name, revision)
);

-- Idempotency checks look events up by id within a stream.
CREATE INDEX events_event_id_idx ON event_store.events (event_id);

-- Sequence-gap cure: every statement that inserts events first takes the transaction-scoped append
-- lock, so identity values are allocated and committed one transaction at a time. A reader that
-- sees position N+1 therefore already sees every position up to N. The adapter takes the same lock
-- before it checks revisions; this trigger makes any other writer obey the rule too.
-- Lock key: 0x63616c6c74726c01 ("calltrl" + 1), the same constant the adapter uses.
CREATE FUNCTION event_store.serialize_appends() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7161124095561722881);
  RETURN NULL;
END
$$;

CREATE TRIGGER events_serialize_appends
  BEFORE INSERT ON event_store.events
  FOR EACH STATEMENT EXECUTE FUNCTION event_store.serialize_appends();

-- Wakes live subscribers once per committed transaction. A hint only: subscribers always read from
-- their own position, since notifications carry no position and may be coalesced.
CREATE FUNCTION event_store.notify_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('event_store_appended', '');
  RETURN NULL;
END
$$;

CREATE TRIGGER events_notify_appended
  AFTER INSERT ON event_store.events
  FOR EACH STATEMENT EXECUTE FUNCTION event_store.notify_appended();

-- Append-only, enforced by the database rather than by convention: an archive never rewrites or
-- deletes what it recorded.
CREATE FUNCTION event_store.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'event_store.events is append-only: % is not allowed', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'events are never changed or removed';
END
$$;

CREATE TRIGGER events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON event_store.events
  FOR EACH STATEMENT EXECUTE FUNCTION event_store.refuse_change();
