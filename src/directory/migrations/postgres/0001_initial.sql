-- The directory schema, version 1 (PostgreSQL).
-- `seq` is the stable listing order: an identity never reuses a value.
-- `*_key` columns hold case-folded copies for case-insensitive matching;
-- the documents keep the original case.

CREATE TABLE users (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    user_name_key TEXT NOT NULL,
    external_id TEXT,
    display_name_key TEXT,
    document JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    last_modified TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_user_name_key ON users (user_name_key);
CREATE INDEX users_external_id ON users (external_id);
CREATE INDEX users_display_name_key ON users (display_name_key);

CREATE TABLE user_emails (
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email_key TEXT NOT NULL,
    PRIMARY KEY (user_id, email_key)
);
CREATE INDEX user_emails_email_key ON user_emails (email_key);

CREATE TABLE groups (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    display_name_key TEXT NOT NULL,
    external_id TEXT,
    document JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    last_modified TIMESTAMPTZ NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX groups_display_name_key ON groups (display_name_key);
CREATE INDEX groups_external_id ON groups (external_id);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    display TEXT,
    member_type TEXT,
    PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member_id ON group_members (member_id);

CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created TIMESTAMPTZ NOT NULL,
    last_used TIMESTAMPTZ,
    revoked TIMESTAMPTZ
);
