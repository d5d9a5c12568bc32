-- Appends a batch to one stream in one statement (one round trip in
-- autocommit). $1 stream, $2 required current version (NULL = any),
-- $3..$6 the events, $7 recorded_at.
-- Returns one row per stored event, or a single row with NULL event_id when
-- nothing was stored; `head` and `fresh` let the caller tell a version
-- conflict from an all-duplicate batch.
WITH new_events AS (
    SELECT *
    FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
        WITH ORDINALITY AS n(event_id, event_type, payload, metadata, ord)
),
fresh AS (
    SELECT ne.*
    FROM new_events ne
    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = ne.event_id)
),
head AS (
    SELECT COALESCE(MAX(stream_version), 0) AS version
    FROM events
    WHERE stream_id = $1
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT $1,
           head.version + row_number() OVER (ORDER BY fresh.ord),
           fresh.event_id, fresh.event_type, fresh.payload, fresh.metadata, $7
    FROM fresh CROSS JOIN head
    WHERE $2::bigint IS NULL OR head.version = $2::bigint
    ORDER BY fresh.ord
    RETURNING event_id, position, stream_version
)
SELECT head.version AS head,
       (SELECT count(*) FROM fresh) AS fresh,
       inserted.event_id, inserted.position, inserted.stream_version
FROM head LEFT JOIN inserted ON true
