"""SQLite schema migrations, applied in order; ``PRAGMA user_version`` records progress."""

MIGRATIONS: list[str] = [
    # 1: accounts, sessions, rooms, memberships, messages with a per-room seq
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL,
        username_key TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_admin INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        last_seen TEXT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE login_failures (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(key, at);
    CREATE TABLE rooms (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('public', 'private')),
        last_seq INTEGER NOT NULL DEFAULT 0,
        created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        last_read_seq INTEGER NOT NULL DEFAULT 0,
        joined_at TEXT NOT NULL,
        PRIMARY KEY (user_id, room_id)
    ) WITHOUT ROWID;
    CREATE INDEX memberships_room ON memberships(room_id);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        author_id INTEGER NOT NULL REFERENCES users(id),
        body TEXT NOT NULL,
        nonce TEXT,
        created_at TEXT NOT NULL,
        edited_at TEXT,
        UNIQUE (room_id, seq)
    );
    CREATE UNIQUE INDEX messages_nonce ON messages(author_id, nonce) WHERE nonce IS NOT NULL;
    CREATE INDEX messages_room_id ON messages(room_id, id);
    -- The room counter moves in the same statement's transaction as the insert, so a
    -- room's seq has no gaps and no duplicates whatever the number of writers.
    CREATE TRIGGER messages_seq AFTER INSERT ON messages BEGIN
        UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id;
    END;
    """,
    # 2: API tokens for bots (``Authorization: Bearer``); only their hashes are kept
    """
    CREATE TABLE api_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    """,
    # 3: rooms as explicit event streams. Every existing message becomes its ``message``
    # event at the same seq; the room counter now follows the events; messages keep
    # their current state (edits, deletion, replies, reactions).
    """
    CREATE TABLE room_events (
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        -- No foreign key: messages are never removed, only marked deleted, and the
        -- hot path (send) is spared the check.
        message_id INTEGER,
        data TEXT,
        PRIMARY KEY (room_id, seq)
    ) WITHOUT ROWID;
    INSERT INTO room_events (room_id, seq, kind, message_id)
        SELECT room_id, seq, 'message', id FROM messages;
    DROP TRIGGER messages_seq;
    -- The room counter moves in the same transaction as the event that takes the seq,
    -- so a room's stream has no gaps and no duplicates whatever the number of writers.
    CREATE TRIGGER room_events_seq AFTER INSERT ON room_events BEGIN
        UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id;
    END;
    ALTER TABLE messages ADD COLUMN reply_to INTEGER REFERENCES messages(id);
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE message_edits (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        body TEXT NOT NULL,
        edited_at TEXT NOT NULL
    );
    CREATE INDEX message_edits_message ON message_edits(message_id, id);
    CREATE TABLE reactions (
        id INTEGER PRIMARY KEY,
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        emoji TEXT NOT NULL,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        UNIQUE (message_id, emoji, user_id)
    );
    """,
    # 4: direct messages, mentions, per-room notification settings. A DM is stored as a
    # private room with ``dm_key`` (its members' ids, sorted): one DM per set of people,
    # and rooms.kind keeps its CHECK (SQLite cannot alter one in place). ``mentions``
    # holds the usernames a message mentions ("room" for @room), space-separated; the
    # partial index lets a summary count unread mentions past only mentioning messages.
    """
    ALTER TABLE rooms ADD COLUMN dm_key TEXT;
    CREATE UNIQUE INDEX rooms_dm_key ON rooms(dm_key) WHERE dm_key IS NOT NULL;
    ALTER TABLE memberships ADD COLUMN notify TEXT NOT NULL DEFAULT 'all';
    ALTER TABLE messages ADD COLUMN mentions TEXT;
    CREATE INDEX messages_mentions ON messages(room_id, seq) WHERE mentions IS NOT NULL;
    """,
    # 5: uploaded files (SPEC §10). ``disk_key`` names the file on disk (random);
    # ``message_id`` is set, in the transaction that stores the message, when one is
    # attached. AUTOINCREMENT: an id (and so a URL) never comes back for another file.
    """
    CREATE TABLE uploads (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        width INTEGER,
        height INTEGER,
        disk_key TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        message_id INTEGER REFERENCES messages(id)
    );
    CREATE INDEX uploads_message ON uploads(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX uploads_orphans ON uploads(created_at) WHERE message_id IS NULL;
    """,
    # 6: full-text search (SPEC §12). An external-content FTS5 index of live message
    # bodies (the text is kept once, in ``messages``), rowid = message id. unicode61
    # folds case and, with remove_diacritics 2, accents ("cafe" finds "Café"); prefix
    # indexes for 2 and 3 characters keep short prefixes (what people type first) to
    # one index lookup; longer prefixes, phrases and whole words need none. Triggers
    # keep it in step with sends, edits and deletes in their own transaction (on the
    # writer's group-commit batch); a deleted message leaves the index.
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        body, content='messages', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2', prefix='2 3'
    );
    INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE NOT deleted;
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN NOT NEW.deleted BEGIN
        INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF body, deleted ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body)
            SELECT 'delete', OLD.id, OLD.body WHERE NOT OLD.deleted;
        INSERT INTO messages_fts (rowid, body) SELECT NEW.id, NEW.body WHERE NOT NEW.deleted;
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN NOT OLD.deleted BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    END;
    """,
    # 7: the user's own account page (SPEC §11): a display name (NULL: the username);
    # each session's browser and address, shown beside its last_seen.
    """
    ALTER TABLE users ADD COLUMN display_name TEXT;
    ALTER TABLE sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
    """,
    # 8: administration (SPEC §11): deactivated accounts (NULL: active), invite links,
    # one-time password reset links (only the token's hash is kept), the audit log.
    """
    ALTER TABLE users ADD COLUMN deactivated_at TEXT;
    CREATE TABLE invites (
        code TEXT PRIMARY KEY,
        created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        uses INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX invites_expiry ON invites(expires_at);
    CREATE TABLE reset_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT
    );
    CREATE INDEX reset_tokens_expiry ON reset_tokens(expires_at);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        address TEXT NOT NULL
    );
    """,
    # 9: incoming webhooks (SPEC §12). A webhook posts as a bot user: a users row with
    # ``bot`` set and a password hash argon2 cannot parse, so no login matches it. Only
    # the SHA-256 of a hook's token is kept; the room and bot go with the hook.
    """
    ALTER TABLE users ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        bot_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX webhooks_room ON webhooks(room_id);
    """,
    # 10: search by 4-letter prefixes from the index. Every word typed matches as a
    # prefix; FTS5 answers a prefix longer than its prefix indexes by merging the
    # doclists of every term that starts with it, in full, before the first row
    # (~60 ms for a word in most of a million messages, however few rows a page
    # wants). With a 4-character prefix index too, a word of up to 4 letters is one
    # doclist read newest first, like any other term (s8: p99 90 -> 35 ms; index
    # +14%, insert cost within noise). The triggers name the table and stay; the
    # index is rebuilt from the live messages.
    """
    DROP TABLE messages_fts;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        body, content='messages', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2', prefix='2 3 4'
    );
    INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages WHERE NOT deleted;
    """,
]
