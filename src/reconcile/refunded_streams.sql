-- Payment streams that hold at least one refund.
SELECT DISTINCT stream_id FROM events
WHERE stream_id = ANY($1) AND event_type = 'ChargeRefunded'
