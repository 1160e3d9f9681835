-- cdr-collector schema, version 5: a record is identified by its key and its protocol.
-- One switch may report a call over two protocols under one source name (a
-- Kamailio's acc_radius accounting and its siptrace HEP copies, a
-- FreeSWITCH's mod_radius_cdr and mod_json_cdr). Their records of one call
-- can carry the same record key; each protocol's record is now kept, and a
-- retransmission within one protocol still ends in one row. Keys accepted
-- before this version do not say which protocol they came from: they are
-- kept with protocol '' and go on guarding every protocol until retention
-- expires them, so a record stored before the upgrade and resent after it
-- is still stored once. Open calls already carry their protocol.

ALTER TABLE cdr_keys ADD COLUMN protocol text NOT NULL DEFAULT '';
ALTER TABLE cdr_keys ALTER COLUMN protocol DROP DEFAULT;
ALTER TABLE cdr_keys DROP CONSTRAINT cdr_keys_pkey;
ALTER TABLE cdr_keys ADD PRIMARY KEY (record_key, protocol);
-- every new key is checked against the older ones: this index holds only those
-- (empty on a database created at this version, shrinking as retention expires them)
CREATE INDEX cdr_keys_before_v5 ON cdr_keys (record_key) WHERE protocol = '';
COMMENT ON COLUMN cdr_keys.protocol IS
    'Protocol of the record that took the key; '''' for keys taken before schema version 5 (they guard every protocol).';

ALTER TABLE open_calls DROP CONSTRAINT open_calls_pkey;
ALTER TABLE open_calls ADD PRIMARY KEY (record_key, protocol);
