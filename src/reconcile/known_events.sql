-- Which of a page's fact ids the ledger already holds, with what it recorded
-- (amounts are compared with the processor's).
SELECT event_id, payload FROM events WHERE event_id = ANY($1)
