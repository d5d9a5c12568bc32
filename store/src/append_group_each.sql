-- append_group.sql for the webhook's shape: every stream of every append
-- gets one event. No per-stream window or sort, as append_each.sql; the
-- same outcome per group ($1: its number) and the same result columns.
-- $1..$7 one entry per event (group, stream, id, type, payload, metadata,
-- required version of its stream or NULL); $8/$9 one entry per group
-- (group, guard event or NULL); $10 recorded_at.
WITH new_events AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[], $7::bigint[])
        WITH ORDINALITY AS n(grp, stream_id, event_id, event_type, payload, metadata, required, ord)
),
-- Scalar subqueries keep each check one index probe (see append.sql).
prepared AS (
    SELECT n.*,
           (SELECT 1 FROM events e WHERE e.event_id = n.event_id LIMIT 1) IS NULL AS has_fresh,
           COALESCE((SELECT MAX(e.stream_version) FROM events e WHERE e.stream_id = n.stream_id), 0) AS head
    FROM new_events n
),
blocked AS (
    SELECT p.grp FROM prepared p
    WHERE p.has_fresh AND p.required IS NOT NULL AND p.head <> p.required
    UNION
    SELECT g.grp FROM unnest($8::int[], $9::uuid[]) AS g(grp, guard)
    WHERE g.guard IS NOT NULL
      AND (SELECT 1 FROM events e WHERE e.event_id = g.guard LIMIT 1) IS NOT NULL
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT p.stream_id, p.head + 1, p.event_id, p.event_type, p.payload, p.metadata, $10
    FROM prepared p
    WHERE p.has_fresh AND p.grp NOT IN (SELECT grp FROM blocked)
    ORDER BY p.ord
    RETURNING stream_id, event_id, position, stream_version
)
SELECT p.grp, p.stream_id, p.head, p.has_fresh, p.required,
       i.event_id, i.position, i.stream_version
FROM prepared p LEFT JOIN inserted i ON i.event_id = p.event_id
