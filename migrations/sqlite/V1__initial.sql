-- Appointments booked or changed through the proxy, one row per tenant and Salesforce id.
-- `resource` is the FHIR Appointment (JSON) as last answered; the other columns are taken from it
-- when it is written, for lookups, searches and retention. Times are Unix milliseconds. Searches
-- by practitioner or location go to Salesforce, which holds the appointment as it is now; the
-- participants' references are kept (`actors`, a JSON array) but not indexed, which keeps a
-- booking's write to one row and two small index entries per identifier.
CREATE TABLE appointment (
    tenant        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    resource      TEXT    NOT NULL,
    status        TEXT,
    start_ms      INTEGER,
    end_ms        INTEGER,
    patient       TEXT,
    actors        TEXT    NOT NULL,
    updated_ms    INTEGER NOT NULL,
    -- The later of end and last change: retention deletes the record once this is old enough.
    keep_until_ms INTEGER NOT NULL,
    UNIQUE (tenant, id)
);
CREATE INDEX appointment_by_patient ON appointment (tenant, patient, start_ms);
CREATE INDEX appointment_by_keep_until ON appointment (keep_until_ms);

-- Business identifiers (`system|value`) of each appointment: what stops a retry from booking twice.
CREATE TABLE appointment_identifier (
    tenant         TEXT NOT NULL,
    identifier     TEXT NOT NULL,
    appointment_id TEXT NOT NULL,
    PRIMARY KEY (tenant, identifier, appointment_id),
    FOREIGN KEY (tenant, appointment_id) REFERENCES appointment (tenant, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX appointment_identifier_by_appointment ON appointment_identifier (tenant, appointment_id);

-- "This identifier is being booked right now": taken before Salesforce is called, removed (by
-- identifier and owner) when the booking is recorded or has failed; one left behind by a dead
-- process expires. Few rows at any time, so no index but the key.
CREATE TABLE identifier_claim (
    tenant     TEXT    NOT NULL,
    identifier TEXT    NOT NULL,
    owner      TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (tenant, identifier)
) WITHOUT ROWID;

-- SMART access tokens the proxy issued, by the SHA-256 of the token (never the token itself).
CREATE TABLE issued_token (
    token_sha256 TEXT    NOT NULL PRIMARY KEY,
    client_id    TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    expires_ms   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX issued_token_by_expiry ON issued_token (expires_ms);

-- Client-assertion ids (`jti`) already used, until the assertion could no longer be accepted.
CREATE TABLE seen_assertion (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) WITHOUT ROWID;
CREATE INDEX seen_assertion_by_expiry ON seen_assertion (expires_ms);

-- JSON-lines files of the earlier file store that were imported, so each is imported once.
CREATE TABLE legacy_import (
    tenant       TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    imported_ms  INTEGER NOT NULL,
    appointments INTEGER NOT NULL,
    PRIMARY KEY (tenant, source)
) WITHOUT ROWID;
