-- cdr-collector schema, version 2: erasure requests outlive the rows they erased.
-- Records of an erased number may still be on their way (in a collector's
-- spool while the database was away, or retransmitted by a switch); the
-- writer drops any record carrying one of these pseudonyms. Entries are
-- pseudonyms only (never numbers) and expire with retention.

CREATE TABLE erasures (
    hmac          text PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now()
);
