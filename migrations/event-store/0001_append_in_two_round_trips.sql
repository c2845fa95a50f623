-- An append transaction in two round trips instead of four or five: what deciding the appends needs
-- is read by one call that also takes the append lock (sent with BEGIN), and the rows are written
-- and checked by another (sent with COMMIT). Each round trip is a wake-up of both processes; at a
-- low arrival rate, where every append is a transaction of its own, they were most of its latency.

-- Takes the append lock, then reads each stream's head, the stored events at the revisions that
-- exact-revision appends claim, and where the ids of `any` appends already are. The function is
-- VOLATILE, so each statement after the lock takes a snapshot of its own and sees every transaction
-- that held the lock before this one.
CREATE FUNCTION event_store.append_facts(
  head_streams text[],
  range_streams text[],
  range_first bigint[],
  range_last bigint[],
  id_streams text[],
  id_values uuid[]
) RETURNS TABLE (fact text, fact_stream text, fact_revision bigint, fact_event_id text, fact_position bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(7161124095561722881);
  RETURN QUERY
    SELECT 'head', s.stream_name,
           (SELECT e.revision FROM event_store.events e
             WHERE e.stream_name = s.stream_name ORDER BY e.revision DESC LIMIT 1),
           NULL::text, NULL::bigint
      FROM unnest(head_streams) AS s(stream_name);
  RETURN QUERY
    SELECT 'revision', e.stream_name, e.revision, e.event_id::text, e.position
      FROM unnest(range_streams, range_first, range_last) AS r(stream_name, first_revision, last_revision)
      JOIN event_store.events e
        ON e.stream_name = r.stream_name AND e.revision BETWEEN r.first_revision AND r.last_revision;
  RETURN QUERY
    SELECT DISTINCT ON (e.stream_name, e.event_id) 'id', e.stream_name, e.revision, e.event_id::text, e.position
      FROM unnest(id_streams, id_values) AS r(stream_name, event_id)
      JOIN event_store.events e ON e.event_id = r.event_id AND e.stream_name = r.stream_name
     ORDER BY e.stream_name, e.event_id, e.revision DESC;
END
$$;

CREATE FUNCTION event_store.refuse_misordered(stream text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RAISE EXCEPTION 'positions out of revision order in %', stream
    USING ERRCODE = 'check_violation';
END
$$;

-- Inserts the rows in the order given and returns their positions. The JSON columns arrive as two
-- JSON arrays whose elements are the events' own texts (`json_array_elements` hands each back
-- exactly). Within a stream, positions must follow revisions: anything else raises, so the
-- transaction cannot commit it.
CREATE FUNCTION event_store.append_events(
  stream_names text[],
  revisions bigint[],
  event_ids uuid[],
  event_types text[],
  data_values json,
  metadata_values json
) RETURNS TABLE (appended_position bigint, appended_stream text, appended_revision bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  RETURN QUERY
    WITH inserted AS (
      INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
      SELECT r.stream_name, r.revision, r.event_id, r.event_type, r.data, r.metadata
        FROM ROWS FROM (
               unnest(stream_names), unnest(revisions), unnest(event_ids), unnest(event_types),
               json_array_elements(data_values), json_array_elements(metadata_values)
             ) WITH ORDINALITY AS r(stream_name, revision, event_id, event_type, data, metadata, ordinality)
       ORDER BY r.ordinality
      RETURNING event_store.events.position, event_store.events.stream_name, event_store.events.revision
    ), ordered AS (
      SELECT i.position, i.stream_name, i.revision,
             lag(i.position) OVER (PARTITION BY i.stream_name ORDER BY i.revision) AS previous
        FROM inserted i
    )
    SELECT o.position, o.stream_name, o.revision
      FROM ordered o
     WHERE CASE WHEN o.previous >= o.position THEN event_store.refuse_misordered(o.stream_name) ELSE true END;
END
$$;
