-- append.sql for the webhook's shape: several streams, one event each. No
-- window function or per-stream sort, so far fewer executor nodes to set up
-- per call. Same parameters as append.sql except $6: the required version of
-- each event's stream (NULL = any); same result columns.
WITH new_events AS (
    SELECT *
    FROM unnest($1::text[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[], $6::bigint[])
        WITH ORDINALITY AS n(stream_id, event_id, event_type, payload, metadata, required, ord)
),
-- Scalar subqueries keep each check one index probe (see append.sql).
prepared AS (
    SELECT n.*,
           (SELECT 1 FROM events e WHERE e.event_id = n.event_id LIMIT 1) IS NULL AS has_fresh,
           COALESCE((SELECT MAX(e.stream_version) FROM events e WHERE e.stream_id = n.stream_id), 0) AS head
    FROM new_events n
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT p.stream_id, p.head + 1, p.event_id, p.event_type, p.payload, p.metadata, $7
    FROM prepared p
    WHERE p.has_fresh
      -- $8: a guard event; when it is already stored, nothing is inserted.
      AND ($8::uuid IS NULL OR NOT EXISTS (SELECT 1 FROM events g WHERE g.event_id = $8::uuid))
      AND NOT EXISTS (
          SELECT 1 FROM prepared c
          WHERE c.has_fresh AND c.required IS NOT NULL AND c.head <> c.required
      )
    ORDER BY p.ord
    RETURNING stream_id, event_id, position, stream_version
)
SELECT p.stream_id, p.head, p.has_fresh, p.required,
       i.event_id, i.position, i.stream_version
FROM prepared p LEFT JOIN inserted i ON i.event_id = p.event_id
