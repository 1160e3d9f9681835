-- cdr-collector schema, version 3: rows say when a switch's time or duration was not believable.
-- A time far outside the window around a record's arrival (older than
-- retention and a year, more than a day ahead) or a call longer than ten days is not
-- stored as sent: it is replaced by the arrival time or left out, and the
-- row is flagged here, so billing can find such rows. Existing rows keep
-- every value and get false.

ALTER TABLE cdrs ADD COLUMN times_implausible boolean NOT NULL DEFAULT false;
ALTER TABLE open_calls ADD COLUMN times_implausible boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN cdrs.times_implausible IS 'True when a time or duration the switch sent was not believable: replaced by the arrival time or left out.';
