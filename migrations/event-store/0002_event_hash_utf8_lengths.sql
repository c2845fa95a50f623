-- The same event hash, computed with less copying where the database's own encoding is UTF-8 (as
-- calltrail's embedded server and every database it creates are): there a text's octet length is
-- its UTF-8 length, read from the value's header, so only the bytes themselves are converted.
-- `convert_to` once per field instead of twice cuts the hash's cost by about a tenth, for every
-- insert (the recorded hash), every seal and every verification. In any other encoding the first
-- definition stays, since lengths there are not UTF-8 lengths.
DO $migration$
BEGIN
  IF current_setting('server_encoding') = 'UTF8' THEN
    CREATE OR REPLACE FUNCTION event_store.event_hash(
      stream_name text, revision bigint, event_id uuid, event_type text, data json, metadata json
    ) RETURNS bytea
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    RETURN sha256(
      '\x000000000000001263616c6c747261696c2d6576656e742d7631'::bytea
      || int8send(octet_length(stream_name)::bigint) || convert_to(stream_name, 'UTF8')
      || int8send(octet_length(revision::text)::bigint) || convert_to(revision::text, 'UTF8')
      || int8send(octet_length(lower(event_id::text))::bigint) || convert_to(lower(event_id::text), 'UTF8')
      || int8send(octet_length(event_type)::bigint) || convert_to(event_type, 'UTF8')
      || int8send(octet_length(data::text)::bigint) || convert_to(data::text, 'UTF8')
      || int8send(octet_length(metadata::text)::bigint) || convert_to(metadata::text, 'UTF8')
    );
  END IF;
END
$migration$;
