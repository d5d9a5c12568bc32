-- A stable view for applications that share the database: who has access,
-- from the subscriptions read model. Column names are a contract
-- (docs/integration.md); add columns, never rename or drop them.
CREATE OR REPLACE VIEW public.payledger_access AS
SELECT email,
       plan,
       status,
       (status = 'active' AND period_end > now()) AS active,
       period_start,
       period_end,
       activation
FROM public.subscriptions;
GRANT SELECT ON public.payledger_access TO payledger_auditor;
