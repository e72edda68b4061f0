/* migrations.c — the schema of the embedded database, as versioned steps
 * run by sqlite_db.c (contract in sqlite_db.h). Append only: a released
 * migration is never edited, since databases out there already recorded it
 * as applied; change the schema with a new version. */
#include "store/sqlite/sqlite_db.h"

/* 1: users and refresh tokens (users service).
 * username UNIQUE is byte-wise (BINARY collation): case folding or Unicode
 * normalization is the users service's policy, applied before the store.
 * refresh_tokens holds only SHA-256 hashes of tokens; family groups the
 * tokens of one login so that theft detection can revoke them together
 * (index on family); expires_at is indexed for the purge; user_id is
 * indexed because ON DELETE CASCADE otherwise scans the whole table for
 * every deleted user. Times are unix milliseconds. */
static const char m1_users[] =
    "CREATE TABLE users("
    " id INTEGER PRIMARY KEY,"
    " username TEXT NOT NULL UNIQUE,"
    " display_name TEXT NOT NULL,"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE refresh_tokens("
    " token_hash BLOB PRIMARY KEY,"
    " family BLOB NOT NULL,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " used INTEGER NOT NULL DEFAULT 0,"
    " revoked INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX refresh_tokens_family ON refresh_tokens(family);"
    "CREATE INDEX refresh_tokens_expires_at ON refresh_tokens(expires_at);"
    "CREATE INDEX refresh_tokens_user_id ON refresh_tokens(user_id);";

const sqlite_migration_t sqlite_migrations[] = {
    {1, "users", m1_users},
};

const size_t sqlite_migrations_count = sizeof sqlite_migrations / sizeof sqlite_migrations[0];
