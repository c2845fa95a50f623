-- The append of a batch whose every append names the exact revision it expects (as the idempotent
-- append always does), in one statement: one round trip and one implicit transaction instead of
-- BEGIN, a look at the heads, the insert and COMMIT. The adapter calls it only when the batch's
-- expectations follow on from one another within each stream, so the whole batch is a write exactly
-- when each stream's head is where its first append expects it. When a head is elsewhere it writes
-- nothing and returns no row; the adapter then decides each append on its own as before (EventStoreDB's
-- rules stay in one place, the adapter's `decideAppend`).
--
-- The heads are read after the append lock is taken, each statement of a VOLATILE function taking
-- its own snapshot, so they are the heads every earlier holder of the lock left. Positions are
-- checked to follow the given order (and with it the revisions of each stream) before anything is
-- committed.
CREATE FUNCTION event_store.append_at_expected_heads(
  expected_streams text[],
  expected_heads bigint[],
  stream_names text[],
  revisions bigint[],
  event_ids uuid[],
  event_types text[],
  data_texts json,
  metadata_texts json
) RETURNS TABLE (appended_position bigint, appended_stream text, appended_revision bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  appended record;
  row_number integer := 0;
  last_position bigint := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(7161124095561722881);
  IF EXISTS (
    SELECT 1
      FROM unnest(expected_streams, expected_heads) AS x(stream_name, head)
     WHERE coalesce((SELECT e.revision FROM event_store.events e
                      WHERE e.stream_name = x.stream_name ORDER BY e.revision DESC LIMIT 1), -1) <> x.head
  ) THEN
    RETURN;
  END IF;
  FOR appended IN
    INSERT INTO event_store.events (stream_name, revision, event_id, event_type, data, metadata)
    SELECT r.stream_name, r.revision, r.event_id, r.event_type, r.data, r.metadata
      FROM ROWS FROM (
             unnest(stream_names), unnest(revisions), unnest(event_ids), unnest(event_types),
             json_array_elements(data_texts), json_array_elements(metadata_texts)
           ) WITH ORDINALITY AS r(stream_name, revision, event_id, event_type, data, metadata, ordinality)
     ORDER BY r.ordinality
    RETURNING events.position, events.stream_name, events.revision
  LOOP
    row_number := row_number + 1;
    IF appended.position <= last_position
       OR appended.stream_name <> stream_names[row_number]
       OR appended.revision <> revisions[row_number] THEN
      RAISE EXCEPTION 'positions out of the given order at row % (%@%)',
        row_number, appended.stream_name, appended.revision;
    END IF;
    last_position := appended.position;
    appended_position := appended.position;
    appended_stream := appended.stream_name;
    appended_revision := appended.revision;
    RETURN NEXT;
  END LOOP;
END
$$;
