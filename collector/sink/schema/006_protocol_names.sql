-- cdr-collector schema, version 6: `cdrs.protocol` checks the form of a name, not a list of them.
-- Version 1 listed the protocols it knew ('radius', 'sip', 'json'), so every
-- new receiver had to change that list, and a receiver added without the
-- change had each of its rows refused by the database and set aside as a
-- rejected row. The value is never taken from input: the daemon writes one
-- of the names of collector.model.Protocol ('file' is new in this version).
-- What is checked now is that it is such a name (a lowercase word of at most
-- 16 characters), which still keeps out an empty, padded or mixed-case value.
-- Adding the constraint reads every stored row once.

ALTER TABLE cdrs DROP CONSTRAINT cdrs_protocol_check;
ALTER TABLE cdrs ADD CONSTRAINT cdrs_protocol_check CHECK (protocol ~ '^[a-z][a-z0-9_]{0,15}$');
COMMENT ON COLUMN cdrs.protocol IS
    'How the record arrived: radius, sip, json or file (a collector.model.Protocol name).';
