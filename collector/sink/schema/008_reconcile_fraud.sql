-- cdr-collector schema, version 8: revenue assurance and fraud signals.
-- `call_id_hash` is a keyed hash of the SIP Call-ID of a call leg, where the
-- record knows it (a SIP dialog; Kamailio's acc_radius; FreeSWITCH's
-- sip_call_id, or its uuid when the SIP profile makes the uuid the Call-ID):
-- it joins a billing record (RADIUS, JSON, CDR file) to the signalling of
-- the same call. `high_risk` says the called number began with a prefix of
-- the configured high-risk list when the record was stored (NULL: no usable
-- called number). Existing rows get NULL in both: nothing is rewritten.
--
-- `reconcile_pending` holds the answered SIP calls waiting out
-- `[reconcile] billing_wait_s` for their billing record; the collector that
-- checks one deletes it in the same transaction, so it holds at most the
-- calls of that wait (rows of a collector that stopped reconciling are
-- purged after `privacy.retention_days`). `reconcile_findings` lists the calls
-- seen answered in SIP whose billing record did not arrive in time
-- ('unbilled') or whose billed duration differs from the signalled one
-- beyond `duration_tolerance_ms` ('duration_mismatch'): keys, times and
-- durations, never a number. Retention deletes its rows with the CDRs';
-- anonymization clears their call_id_hash (and deletes pending rows that old).
--
-- The index on billing rows' call_id_hash is built over every partition once
-- (it reads each stored row): it is partial, so SIP rows do not pay for it.

ALTER TABLE cdrs ADD COLUMN call_id_hash text;
ALTER TABLE cdrs ADD COLUMN high_risk boolean;
ALTER TABLE open_calls ADD COLUMN call_id_hash text;
ALTER TABLE open_calls ADD COLUMN high_risk boolean;
COMMENT ON COLUMN cdrs.call_id_hash IS 'Keyed hash of the SIP Call-ID of the leg (joins billing and signalling rows); never the Call-ID.';
COMMENT ON COLUMN cdrs.high_risk IS 'The called number began with a configured high-risk prefix (fraud.high_risk_prefixes_file) when stored; NULL without a usable called number.';

CREATE INDEX cdrs_billing_call_id ON cdrs (call_id_hash)
    WHERE call_id_hash IS NOT NULL AND protocol <> 'sip';

CREATE TABLE reconcile_pending (
    record_key     bytea       PRIMARY KEY,
    source         text        NOT NULL,
    call_id_hash   text        NOT NULL,
    call_time      timestamptz NOT NULL,
    connect_time   timestamptz,
    disconnect_time timestamptz,
    duration_ms    bigint      NOT NULL,
    received_at    timestamptz NOT NULL
);
CREATE INDEX reconcile_pending_received ON reconcile_pending (received_at);
COMMENT ON TABLE reconcile_pending IS 'Answered SIP calls waiting for their billing record ([reconcile] billing_wait_s); no numbers.';

CREATE TABLE reconcile_findings (
    record_key        bytea       PRIMARY KEY,
    finding           text        NOT NULL CHECK (finding IN ('unbilled', 'duration_mismatch')),
    source            text        NOT NULL,
    call_id_hash      text,
    call_time         timestamptz NOT NULL,
    connect_time      timestamptz,
    disconnect_time   timestamptz,
    signalled_ms      bigint      NOT NULL,
    billed_ms         bigint,
    billing_source    text,
    billing_protocol  text,
    billing_record_key bytea,
    found_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconcile_findings_call_time ON reconcile_findings (call_time);
COMMENT ON TABLE reconcile_findings IS 'Calls answered in SIP and not billed in time, or billed for a different duration; keys, times and durations only.';
COMMENT ON COLUMN reconcile_findings.record_key IS 'Record key of the SIP row (cdrs.record_key, protocol sip).';
COMMENT ON COLUMN reconcile_findings.signalled_ms IS 'Duration of the call as the SIP signalling showed it (answer to BYE).';
COMMENT ON COLUMN reconcile_findings.call_id_hash IS 'Keyed hash of the SIP Call-ID (as cdrs.call_id_hash); cleared by anonymize_after_days.';
COMMENT ON COLUMN reconcile_findings.billed_ms IS 'Duration of the closest billing row; NULL when none arrived in time.';
