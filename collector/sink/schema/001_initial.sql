-- cdr-collector schema, version 1.
-- One row per call leg in `cdrs`, partitioned by day of `call_time` so that
-- retention drops whole partitions. Exactly-once storage is decided in
-- `cdr_keys` (a partitioned table cannot hold a unique index without its
-- partition column, and a derived time may differ between two copies of a
-- record). No column holds a full phone number, an IP address or a SIP URI.

CREATE TABLE cdr_keys (
    record_key  bytea PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cdr_keys_first_seen ON cdr_keys (first_seen);

CREATE TABLE cdrs (
    record_key          bytea       NOT NULL,
    source              text        NOT NULL,
    protocol            text        NOT NULL CHECK (protocol IN ('radius', 'sip', 'json')),
    account             text,
    leg                 text        NOT NULL DEFAULT '',
    call_time           timestamptz NOT NULL,
    setup_time          timestamptz,
    connect_time        timestamptz,
    disconnect_time     timestamptz,
    duration_ms         bigint      NOT NULL CHECK (duration_ms >= 0),
    answered            boolean     NOT NULL,
    disconnect_cause    smallint,
    sip_code            smallint,
    pdd_ms              integer,
    called_prefix       text,
    called_country      text,
    called_destination  text,
    called_masked       text,
    called_hmac         text,
    calling_country     text,
    calling_hmac        text,
    correlation         text,
    times_derived       boolean     NOT NULL DEFAULT false,
    clock_unsynced      boolean     NOT NULL DEFAULT false,
    incomplete          boolean     NOT NULL DEFAULT false,
    received_at         timestamptz NOT NULL,
    stored_at           timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (call_time);

COMMENT ON TABLE cdrs IS 'One redacted CDR per call leg; partitioned by day of call_time (UTC).';
COMMENT ON COLUMN cdrs.call_time IS 'When the call began (setup, else connect, else disconnect): the partition key.';
COMMENT ON COLUMN cdrs.duration_ms IS 'Billable time, connect to disconnect; 0 when unanswered.';
COMMENT ON COLUMN cdrs.called_masked IS 'Called number with its last digits hidden, as itemized bills show it.';
COMMENT ON COLUMN cdrs.called_hmac IS 'KEYID:HMAC-SHA256 pseudonym of the called number (E.164).';
COMMENT ON COLUMN cdrs.calling_hmac IS 'KEYID:HMAC-SHA256 pseudonym of the calling number (E.164).';
COMMENT ON COLUMN cdrs.times_derived IS 'True when a time was derived by the collector rather than sent by the switch.';
COMMENT ON COLUMN cdrs.clock_unsynced IS 'True when the switch flagged its clock as unsynchronized.';
COMMENT ON COLUMN cdrs.incomplete IS 'True when the end of the call was not seen (lost stop, switch restart, dialog timeout).';

-- rows whose day has no partition (a stop completed from a start long ago)
CREATE TABLE cdrs_default PARTITION OF cdrs DEFAULT;

-- No index on called_hmac / calling_hmac: they would cost about a fifth of the
-- insert rate, and the only query that needs them is `erase`, a rare
-- data-subject request that scans partition by partition instead.

-- calls started and not yet stopped; completes stops that carry no duration
CREATE TABLE open_calls (
    record_key          bytea PRIMARY KEY,
    source              text        NOT NULL,
    protocol            text        NOT NULL,
    account             text,
    leg                 text        NOT NULL DEFAULT '',
    opened_at           timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    setup_time          timestamptz,
    connect_time        timestamptz,
    called_prefix       text,
    called_country      text,
    called_destination  text,
    called_masked       text,
    called_hmac         text,
    calling_country     text,
    calling_hmac        text,
    correlation         text,
    times_derived       boolean     NOT NULL DEFAULT false,
    clock_unsynced      boolean     NOT NULL DEFAULT false,
    received_at         timestamptz NOT NULL
);
CREATE INDEX open_calls_source_opened ON open_calls (source, opened_at);
CREATE INDEX open_calls_called_hmac ON open_calls (called_hmac);
CREATE INDEX open_calls_calling_hmac ON open_calls (calling_hmac);
