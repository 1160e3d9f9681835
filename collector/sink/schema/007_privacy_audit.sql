-- cdr-collector schema, version 7: a privacy audit trail of who erased, exported, purged or changed keys.
-- Every `erase`, `export` and `purge`, each key rotation by `keygen` (when
-- it can reach the database), each change of the pseudonym key ids a daemon
-- loads, and each automatic retention run that deleted something writes one
-- row: when, what, who (the operating-system user, and the user behind sudo),
-- how many rows. It never holds a number, nor a pseudonym of one: `detail`
-- says how a number was searched ("number searched under 2 key(s)"), never
-- which. Rows are kept for `privacy.audit_retention_days`, then purged by the
-- same purge that applies retention to the CDRs. Existing tables are not
-- touched.

CREATE TABLE privacy_audit (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    operation  text        NOT NULL CHECK (operation ~ '^[a-z][a-z-]{0,31}$'),
    actor      text        NOT NULL,
    rows       bigint      CHECK (rows >= 0),
    detail     text        NOT NULL DEFAULT ''
);
CREATE INDEX privacy_audit_at ON privacy_audit (at);

COMMENT ON TABLE privacy_audit IS 'Privacy audit trail: erase, export, purge, retention, key changes. Never a number or a pseudonym.';
COMMENT ON COLUMN privacy_audit.actor IS 'Operating-system user who ran it, with the user behind sudo (SUDO_USER) when there is one.';
COMMENT ON COLUMN privacy_audit.rows IS 'Rows the operation deleted or printed; NULL where it touches none (key changes).';
