"""PostgreSQL schema migrations, applied in order; ``schema_version`` records progress.

Same tables and meaning as ``sqlite_schema``; times are ``timestamptz``. The room
counter (``rooms.last_seq``) is advanced by the engine under the room's row lock, in
the transaction that inserts the message, so no trigger is needed.
"""

MIGRATIONS: list[str] = [
    # 1: accounts, sessions, rooms, memberships, messages with a per-room seq
    """
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username text NOT NULL,
        username_key text NOT NULL UNIQUE,
        password_hash text NOT NULL,
        is_admin boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL
    );
    CREATE TABLE sessions (
        token_hash text PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        last_seen timestamptz NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE login_failures (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key text NOT NULL,
        at timestamptz NOT NULL
    );
    CREATE INDEX login_failures_key ON login_failures(key, at);
    CREATE TABLE rooms (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        slug text NOT NULL UNIQUE,
        name text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('public', 'private')),
        last_seq bigint NOT NULL DEFAULT 0,
        created_by bigint REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL
    );
    CREATE TABLE memberships (
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        last_read_seq bigint NOT NULL DEFAULT 0,
        joined_at timestamptz NOT NULL,
        PRIMARY KEY (user_id, room_id)
    );
    CREATE INDEX memberships_room ON memberships(room_id);
    CREATE TABLE messages (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        author_id bigint NOT NULL REFERENCES users(id),
        body text NOT NULL,
        nonce text,
        created_at timestamptz NOT NULL,
        edited_at timestamptz,
        UNIQUE (room_id, seq)
    );
    CREATE UNIQUE INDEX messages_nonce ON messages(author_id, nonce) WHERE nonce IS NOT NULL;
    CREATE INDEX messages_room_id ON messages(room_id, id);
    """,
    # 2: API tokens for bots (``Authorization: Bearer``); only their hashes are kept
    """
    CREATE TABLE api_tokens (
        token_hash text PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name text NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    """,
    # 3: rooms as explicit event streams (see sqlite_schema); every existing message
    # becomes its ``message`` event at the same seq.
    """
    CREATE TABLE room_events (
        room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        seq bigint NOT NULL,
        kind text NOT NULL,
        message_id bigint,
        data text,
        PRIMARY KEY (room_id, seq)
    );
    INSERT INTO room_events (room_id, seq, kind, message_id)
        SELECT room_id, seq, 'message', id FROM messages;
    ALTER TABLE messages ADD COLUMN reply_to bigint REFERENCES messages(id),
        ADD COLUMN deleted boolean NOT NULL DEFAULT false;
    CREATE TABLE message_edits (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        body text NOT NULL,
        edited_at timestamptz NOT NULL
    );
    CREATE INDEX message_edits_message ON message_edits(message_id, id);
    CREATE TABLE reactions (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        emoji text NOT NULL,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        UNIQUE (message_id, emoji, user_id)
    );
    """,
    # 4: direct messages, mentions, notification settings (see sqlite_schema)
    """
    ALTER TABLE rooms ADD COLUMN dm_key text;
    CREATE UNIQUE INDEX rooms_dm_key ON rooms(dm_key) WHERE dm_key IS NOT NULL;
    ALTER TABLE memberships ADD COLUMN notify text NOT NULL DEFAULT 'all';
    ALTER TABLE messages ADD COLUMN mentions text;
    CREATE INDEX messages_mentions ON messages(room_id, seq) WHERE mentions IS NOT NULL;
    """,
    # 5: uploaded files (see sqlite_schema)
    """
    CREATE TABLE uploads (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name text NOT NULL,
        size bigint NOT NULL,
        content_type text NOT NULL,
        width integer,
        height integer,
        disk_key text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        message_id bigint REFERENCES messages(id)
    );
    CREATE INDEX uploads_message ON uploads(message_id) WHERE message_id IS NOT NULL;
    CREATE INDEX uploads_orphans ON uploads(created_at) WHERE message_id IS NULL;
    """,
    # 6: full-text search (SPEC §12). ``chatapp_fold`` lowers a text and strips its
    # accents: with the unaccent extension when it can be had (created in ``public``
    # if missing; a trusted extension, so a database owner may), else with a fixed
    # table of the Latin-1 accented letters (README: Search). It is IMMUTABLE so a
    # stored generated column can use it: ``search`` follows every send, edit and
    # delete in the writer's own transaction, and the GIN index answers ``@@``. Every
    # run of other characters becomes a space first, so words are split as chatapp
    # splits a query (and as SQLite's unicode61 does): "deploy.sh" is deploy + sh.
    """
    DO $migration$
    DECLARE
        where_unaccent name;
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent') THEN
            BEGIN
                CREATE EXTENSION unaccent SCHEMA public;
            EXCEPTION WHEN OTHERS THEN
                NULL;  -- not installed on the server, or not allowed: the fallback
            END;
        END IF;
        SELECT n.nspname INTO where_unaccent FROM pg_extension e
            JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent';
        IF where_unaccent IS NOT NULL THEN
            EXECUTE format(
                'CREATE FUNCTION chatapp_fold(text) RETURNS text LANGUAGE sql IMMUTABLE'
                ' STRICT PARALLEL SAFE AS %L',
                format('SELECT lower(%I.unaccent(%L::regdictionary, $1))',
                       where_unaccent, quote_ident(where_unaccent) || '.unaccent'));
            INSERT INTO meta (key, value) VALUES ('search_fold', 'unaccent');
        ELSE
            CREATE FUNCTION chatapp_fold(text) RETURNS text LANGUAGE sql IMMUTABLE
                STRICT PARALLEL SAFE AS $fold$
                SELECT lower(translate($1,
                    'ÀÁÂÃÄÅàáâãäåÇçÈÉÊËèéêëÌÍÎÏìíîïÑñÒÓÔÕÖØòóôõöøÙÚÛÜùúûüÝýÿ',
                    'AAAAAAaaaaaaCcEEEEeeeeIIIIiiiiNnOOOOOOooooooUUUUuuuuYyy'))
            $fold$;
            INSERT INTO meta (key, value) VALUES ('search_fold', 'translate');
        END IF;
    END
    $migration$;
    ALTER TABLE messages ADD COLUMN search tsvector
        GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,
            regexp_replace(chatapp_fold(body), '[^[:alnum:]]+', ' ', 'g'))) STORED;
    CREATE INDEX messages_search ON messages USING gin (search);
    """,
    # 7: display names and each session's browser and address (see sqlite_schema)
    """
    ALTER TABLE users ADD COLUMN display_name text;
    ALTER TABLE sessions ADD COLUMN user_agent text NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN address text NOT NULL DEFAULT '';
    """,
    # 8: administration (see sqlite_schema)
    """
    ALTER TABLE users ADD COLUMN deactivated_at timestamptz;
    CREATE TABLE invites (
        code text PRIMARY KEY,
        created_by bigint REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        uses integer NOT NULL,
        used integer NOT NULL DEFAULT 0,
        revoked boolean NOT NULL DEFAULT false
    );
    CREATE INDEX invites_expiry ON invites(expires_at);
    CREATE TABLE reset_tokens (
        token_hash text PRIMARY KEY,
        user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
    );
    CREATE INDEX reset_tokens_expiry ON reset_tokens(expires_at);
    CREATE TABLE audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        target text NOT NULL,
        address text NOT NULL
    );
    """,
    # 9: incoming webhooks (see sqlite_schema)
    """
    ALTER TABLE users ADD COLUMN bot boolean NOT NULL DEFAULT false;
    CREATE TABLE webhooks (
        id bigserial PRIMARY KEY,
        token_hash text NOT NULL UNIQUE,
        room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
        bot_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name text NOT NULL,
        created_by bigint REFERENCES users(id) ON DELETE SET NULL,
        created_at timestamptz NOT NULL
    );
    CREATE INDEX webhooks_room ON webhooks(room_id);
    """,
    # 10: ``from:`` searches: a message's author and id, so the GIN index's matches
    # are ANDed with one author's messages in a bitmap instead of walking the id
    # index back and reading every match of the word until enough are that
    # author's (a middling word from one of 40 authors: 300 ms -> 10 ms at 1M).
    # SQLite needs none: its FTS index drives the search in id order and checks the
    # author by rowid.
    """
    CREATE INDEX messages_author ON messages(author_id, id);
    """,
]
