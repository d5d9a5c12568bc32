-- One page of the chain with the events it covers; a missing event shows as
-- NULL columns.
SELECT c.seq, c.position AS chain_position, c.transaction_id, c.hash,
       e.position, e.stream_id, e.stream_version, e.event_id, e.event_type,
       e.payload::text AS payload_text, e.metadata::text AS metadata_text, e.recorded_at
FROM event_chain c
LEFT JOIN events e ON e.transaction_id = c.transaction_id AND e.position = c.position
WHERE c.seq > $1
ORDER BY c.seq
LIMIT $2
