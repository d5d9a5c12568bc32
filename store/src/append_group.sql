-- Group commit: several independent appends in one statement, one commit.
-- Each append is a group ($1/$7/$10: its number) with its own outcome: its
-- duplicates are skipped, and when one of its streams is not at the
-- required version, or its guard event is already stored, nothing of that
-- group is inserted — the other groups are untouched. The caller puts no
-- stream and no event id in two groups, so each group's checks see only
-- what was there before the statement.
-- $1..$6 one entry per event (group, stream, id, type, payload, metadata);
-- $7..$9 one entry per stream of a group (group, stream, required version,
-- NULL = any); $10/$11 one entry per group (group, guard event or NULL);
-- $12 recorded_at. Returns one row per stored event and at least one per
-- stream (NULL event_id when nothing was stored there).
WITH new_events AS (
    SELECT *
    FROM unnest($1::int[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
        WITH ORDINALITY AS n(grp, stream_id, event_id, event_type, payload, metadata, ord)
),
-- Scalar subqueries keep each check one index probe (see append.sql).
fresh AS (
    SELECT ne.*
    FROM new_events ne
    WHERE (SELECT 1 FROM events e WHERE e.event_id = ne.event_id LIMIT 1) IS NULL
),
heads AS (
    SELECT s.grp, s.stream_id, s.required,
           COALESCE((SELECT MAX(e.stream_version) FROM events e WHERE e.stream_id = s.stream_id), 0) AS version,
           EXISTS (SELECT 1 FROM fresh f WHERE f.stream_id = s.stream_id) AS has_fresh
    FROM unnest($7::int[], $8::text[], $9::bigint[]) AS s(grp, stream_id, required)
),
blocked AS (
    SELECT g.grp
    FROM unnest($10::int[], $11::uuid[]) AS g(grp, guard)
    WHERE (g.guard IS NOT NULL
           AND (SELECT 1 FROM events e WHERE e.event_id = g.guard LIMIT 1) IS NOT NULL)
       OR EXISTS (
           SELECT 1 FROM heads c
           WHERE c.grp = g.grp AND c.has_fresh AND c.required IS NOT NULL AND c.version <> c.required)
),
inserted AS (
    INSERT INTO events (stream_id, stream_version, event_id, event_type, payload, metadata, recorded_at)
    SELECT f.stream_id,
           h.version + row_number() OVER (PARTITION BY f.stream_id ORDER BY f.ord),
           f.event_id, f.event_type, f.payload, f.metadata, $12
    FROM fresh f JOIN heads h ON h.stream_id = f.stream_id
    WHERE f.grp NOT IN (SELECT grp FROM blocked)
    ORDER BY f.ord
    RETURNING stream_id, event_id, position, stream_version
)
SELECT h.grp, h.stream_id, h.version AS head, h.has_fresh, h.required,
       i.event_id, i.position, i.stream_version
FROM heads h LEFT JOIN inserted i ON i.stream_id = h.stream_id
