-- Appends events to one or more streams in one statement: one round trip,
-- atomic by itself (no BEGIN/COMMIT needed). $1..$5 one entry per event
-- (stream, id, type, payload, metadata); $6/$7 one entry per stream (stream,
-- required current version, NULL = any); $8 recorded_at.
-- Ids already stored are skipped. If any stream with new events is not at
-- its required version, nothing is inserted. Returns one row per stored
-- event, and at least one row per stream (with NULL event_id when nothing
-- was stored there) so the caller can name a conflict.
WITH new_events AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[])
        WITH ORDINALITY AS n(stream_id, event_id, event_type, payload, metadata, ord)
),
-- A scalar subquery, not NOT EXISTS: PostgreSQL may turn NOT EXISTS into a
-- hashed anti-join that scans the whole log; this stays one index probe per
-- event whatever the statistics said when the plan was made.
fresh AS (
    SELECT ne.*
    FROM new_events ne
    WHERE (SELECT 1 FROM events e WHERE e.event_id = ne.event_id LIMIT 1) IS NULL
),
heads AS (
    SELECT s.stream_id, s.required,
           COALESCE((SELECT MAX(e.stream_version) FROM events e WHERE e.stream_id = s.stream_id), 0) AS version,
           EXISTS (SELECT 1 FROM fresh f WHERE f.stream_id = s.stream_id) AS has_fresh
    FROM unnest($6::text[], $7::bigint[]) AS s(stream_id, required)
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT f.stream_id,
           h.version + row_number() OVER (PARTITION BY f.stream_id ORDER BY f.ord),
           f.event_id, f.event_type, f.payload, f.metadata, $8
    FROM fresh f JOIN heads h ON h.stream_id = f.stream_id
    -- $9: a guard event; when it is already stored, nothing is inserted.
    WHERE ($9::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM events g WHERE g.event_id = $9::uuid))
      AND NOT EXISTS (
        SELECT 1 FROM heads c
        WHERE c.has_fresh AND c.required IS NOT NULL AND c.version <> c.required
    )
    ORDER BY f.ord
    RETURNING stream_id, event_id, position, stream_version
)
SELECT h.stream_id, h.version AS head, h.has_fresh, h.required,
       i.event_id, i.position, i.stream_version
FROM heads h LEFT JOIN inserted i ON i.stream_id = h.stream_id
