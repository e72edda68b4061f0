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

/* 2: channels, memberships and messages (messages service; contract in
 * store/messages_store.h, storage decisions in messages_sqlite.h).
 * channels holds both kinds. CHECKs pin each kind's shape: a channel has a
 * name and no user pair; a DM has no name, is private and stores its pair
 * ordered (dm_lo <= dm_hi), and UNIQUE(dm_lo, dm_hi) is what makes
 * dm_get_or_create race-safe (NULL pairs of channels never collide). Names
 * are unique among kind 'channel' only (partial index), byte-wise.
 * channels_public serves the paginated public list without scanning DMs,
 * which will outnumber channels; channels_owner serves ON DELETE SET NULL.
 * last_seq is written only by the group-commit writer, in the transaction
 * that inserts the messages, so it is always the highest committed seq.
 * members: WITHOUT ROWID because the pair is the key and rows are small;
 * members_user serves "my channels". Users' deletion cascades to their
 * memberships; channel deletion cascades to members and messages.
 * messages: id is the snowflake (INTEGER PRIMARY KEY, so rows append at the
 * end of the table's b-tree as ids grow); UNIQUE(channel_id, seq) is both
 * the page index and the guard against a second seq writer. author_id has
 * no foreign key on purpose: history outlives accounts, and a user's
 * deletion must not be blocked or cascade into other people's channels.
 * messages_nonce is partial: messages without a nonce cost no index entry;
 * NULL nonces never collide. */
static const char m2_messages[] =
    "CREATE TABLE channels("
    " id INTEGER PRIMARY KEY,"
    " kind TEXT NOT NULL CHECK (kind IN ('channel', 'dm')),"
    " name TEXT,"
    " topic TEXT NOT NULL DEFAULT '',"
    " private INTEGER NOT NULL DEFAULT 0,"
    " owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
    " dm_lo INTEGER,"
    " dm_hi INTEGER,"
    " created_at INTEGER NOT NULL,"
    " last_seq INTEGER NOT NULL DEFAULT 0,"
    " CHECK (kind = 'dm' OR (name IS NOT NULL AND dm_lo IS NULL AND dm_hi IS NULL)),"
    " CHECK (kind = 'channel' OR (name IS NULL AND owner_id IS NULL AND private = 1"
    "        AND dm_lo IS NOT NULL AND dm_hi IS NOT NULL AND dm_lo <= dm_hi)),"
    " UNIQUE (dm_lo, dm_hi));"
    "CREATE UNIQUE INDEX channels_name ON channels(name) WHERE kind = 'channel';"
    "CREATE INDEX channels_public ON channels(id) WHERE kind = 'channel' AND private = 0;"
    "CREATE INDEX channels_owner ON channels(owner_id);"
    "CREATE TABLE members("
    " channel_id INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,"
    " user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    " joined_at INTEGER NOT NULL,"
    " last_read_seq INTEGER NOT NULL DEFAULT 0,"
    " muted INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (channel_id, user_id)) WITHOUT ROWID;"
    "CREATE INDEX members_user ON members(user_id, channel_id);"
    "CREATE TABLE messages("
    " id INTEGER PRIMARY KEY,"
    " channel_id INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " author_id INTEGER NOT NULL,"
    " body TEXT NOT NULL,"
    " attachments TEXT,"
    " nonce BLOB,"
    " created_at INTEGER NOT NULL,"
    " edited_at INTEGER NOT NULL DEFAULT 0,"
    " deleted INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (channel_id, seq));"
    "CREATE UNIQUE INDEX messages_nonce ON messages(author_id, channel_id, nonce)"
    " WHERE nonce IS NOT NULL;";

/* 3: media metadata (media service; contract in store/media_store.h).
 * key is the public key (random id + sanitized name) and the primary key:
 * lookups are by key only. owner_id has no foreign key, like messages'
 * author_id: deleting an account must not silently orphan stored bytes (the
 * object files are deleted by the media service, not by a cascade);
 * media_owner serves per-user listing and quota later. sha256 is the raw
 * 32-byte digest (the ETag is its hex form). Times are unix milliseconds. */
static const char m3_media[] =
    "CREATE TABLE media("
    " key TEXT PRIMARY KEY,"
    " owner_id INTEGER NOT NULL,"
    " mime TEXT NOT NULL,"
    " size INTEGER NOT NULL CHECK (size >= 0),"
    " sha256 BLOB NOT NULL CHECK (length(sha256) = 32),"
    " created_at INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX media_owner ON media(owner_id, created_at);";

/* 4: pending notifications and mutes (notifications service; contract in
 * store/notifications_store.h, decisions in docs/notifications.md).
 * WITHOUT ROWID keyed (user_id, id): a user's notifications are one
 * contiguous b-tree range, which list, the cap trim ("older than the
 * 100th newest") and mark-read all walk. notifications_expiry serves the
 * global purge of expired rows. No foreign keys: the service may run
 * beside a users table in another database, and a deleted user's rows
 * expire within 7 days anyway. payload is the JSON object's text. */
static const char m4_notifications[] =
    "CREATE TABLE notifications("
    " user_id INTEGER NOT NULL,"
    " id INTEGER NOT NULL,"
    " type TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, id)) WITHOUT ROWID;"
    "CREATE INDEX notifications_expiry ON notifications(created_at);"
    "CREATE TABLE notification_mutes("
    " user_id INTEGER NOT NULL,"
    " channel_id INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, channel_id)) WITHOUT ROWID;";

/* 5: the attachments index (messages service; store/messages_store.h
 * attachment_visible). One row per (media key, message) written by the
 * group-commit writer in the transaction that inserts the message, so a
 * committed message is always indexed. The key comes first in the primary
 * key: the only question asked is "who may see this key", answered by
 * joining members on (channel_id, user_id). channel_id repeats the
 * message's so that join needs no messages lookup; the message's own row
 * is still read for `deleted` (a soft-deleted message no longer grants
 * access, without touching this table). The cascade from messages (which
 * cascade from channels) removes the rows of a deleted channel;
 * attachments_message serves it. media_key has no foreign key to media:
 * another service's data, possibly in another database. */
static const char m5_attachments[] =
    "CREATE TABLE attachments("
    " media_key TEXT NOT NULL,"
    " channel_id INTEGER NOT NULL,"
    " message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
    " PRIMARY KEY (media_key, channel_id, message_id)) WITHOUT ROWID;"
    "CREATE INDEX attachments_message ON attachments(message_id);";

/* 6: the messages store remembers recent nonces in memory (store/
 * msg_nonces.h): with clients' random nonces, this unique index put every
 * insert on a random page and the writer fell seconds behind at 50,000
 * appends/s (docs/storage.md). The nonce stays a column of the message. */
static const char m6_drop_nonce_index[] = "DROP INDEX messages_nonce;";

const sqlite_migration_t sqlite_migrations[] = {
    {1, "users", m1_users},
    {2, "messages", m2_messages},
    {3, "media", m3_media},
    {4, "notifications", m4_notifications},
    {5, "attachments", m5_attachments},
    {6, "nonces in memory", m6_drop_nonce_index},
};

const size_t sqlite_migrations_count = sizeof sqlite_migrations / sizeof sqlite_migrations[0];
