-- A stable view for applications that share the database: who has access,
-- from the subscriptions read model. Column names are a contract
-- (docs/integration.md); add columns, never rename or drop them.
-- `active`: paid up (or cancelled but not yet at its end); a renewal due
-- while the processor bills it; past due while the processor still
-- retries, unless PAYLEDGER_PAST_DUE_ACCESS=revoke (recorded at start-up
-- in payledger_settings).
CREATE OR REPLACE VIEW public.payledger_access AS
SELECT email,
       plan,
       status,
       ((status IN ('active', 'canceled', 'past_due') AND period_end > now())
        OR (status = 'active' AND COALESCE(grace_until > now(), false))
        OR (status = 'past_due' AND COALESCE(grace_until > now(), false)
            AND NOT EXISTS (SELECT 1 FROM public.payledger_settings
                            WHERE name = 'past_due_access' AND value = 'revoke'))) AS active,
       period_start,
       period_end,
       activation,
       renews_at,
       cancel_at_period_end
FROM public.subscriptions;
GRANT SELECT ON public.payledger_access TO payledger_auditor;
