-- The common case of append.sql: one event in one stream. The same checks
-- and the same result shape, without unnest, sort and window, which cost a tenth of the
-- statement's time.
WITH head AS (
    SELECT COALESCE(MAX(stream_version), 0) AS version
    FROM events
    WHERE stream_id = $1
),
fresh AS (
    SELECT NOT EXISTS (SELECT 1 FROM events WHERE event_id = $3) AS is_fresh
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT $1, head.version + 1, $3, $4, $5, $6, $7
    FROM head, fresh
    WHERE fresh.is_fresh AND ($2::bigint IS NULL OR head.version = $2::bigint)
    RETURNING event_id, position, stream_version
)
SELECT $1::text AS stream_id, head.version AS head, fresh.is_fresh AS has_fresh,
       $2::bigint AS required,
       inserted.event_id, inserted.position, inserted.stream_version
FROM head CROSS JOIN fresh LEFT JOIN inserted ON true
