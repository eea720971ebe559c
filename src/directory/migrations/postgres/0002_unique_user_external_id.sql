-- Version 2: a User's externalId is unique, compared exactly, because
-- access.require_provisioned_user matches a login's `sub` against it and
-- two Users with one externalId would make that match ambiguous. Users
-- without an externalId (NULL) do not clash. Groups keep a plain index.
-- An empty externalId counts as none, so earlier Users that share one do
-- not stop the upgrade.
UPDATE users SET external_id = NULL WHERE external_id = '';
DROP INDEX users_external_id;
CREATE UNIQUE INDEX users_external_id ON users (external_id);
