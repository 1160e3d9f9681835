-- cdr-collector schema, version 4: switch restarts, so that a reused session id is a new call.
-- A switch whose session counter starts again after a reboot reuses its
-- Acct-Session-Ids; its Accounting-On (or -Off) marks a new generation of
-- them. Each collector records the restarts it sees here and reads the
-- others', and a record whose packet carries no setup time of its own is
-- keyed with the generation it belongs to. Holds no personal data: the
-- configured source name and the restart's time.

CREATE TABLE source_resets (
    source     text        NOT NULL,
    reset_at   timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, reset_at)
);
