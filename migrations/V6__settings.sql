-- Settings the read-model views must follow, written by `serve`/`run` at
-- start-up from the environment (the views cannot read it): today
-- PAYLEDGER_PAST_DUE_ACCESS, which payledger_access's `active` obeys.
CREATE TABLE payledger_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
GRANT SELECT ON payledger_settings TO payledger_auditor;
