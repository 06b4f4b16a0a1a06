-- Freehold social app schema. PostgreSQL is the source of truth; Redis only caches and queues.
-- Ids are 64-bit, time-ordered and unguessable (app/ids.py): 41 bits of ms since 2020 + 22 random.
-- Deletes are real (ON DELETE CASCADE), never soft.

CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  username text NOT NULL,
  email text NOT NULL,
  password_hash text NOT NULL,
  display_name text NOT NULL DEFAULT '',
  bio text NOT NULL DEFAULT '',
  avatar_key text,
  is_verified boolean NOT NULL DEFAULT false,
  is_admin boolean NOT NULL DEFAULT false,
  is_juror boolean NOT NULL DEFAULT false,
  strikes integer NOT NULL DEFAULT 0,
  suspended_at timestamptz,
  followers_count integer NOT NULL DEFAULT 0,
  following_count integer NOT NULL DEFAULT 0,
  posts_count integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_active_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX accounts_username_key ON accounts (username text_pattern_ops);
CREATE UNIQUE INDEX accounts_email_key ON accounts (lower(email));
CREATE INDEX accounts_display_name_prefix ON accounts (lower(display_name) text_pattern_ops);

CREATE TABLE sessions (
  token_hash bytea PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);

CREATE TABLE follows (
  follower_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  followee_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

CREATE TABLE blocks (
  blocker_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  blocked_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id);

CREATE TABLE mutes (
  muter_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  muted_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (muter_id, muted_id)
);

-- Posts (and echoes) partitioned by id range, one partition per calendar month (UTC).
CREATE TABLE posts (
  id bigint NOT NULL,
  author_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  body text NOT NULL DEFAULT '',
  reply_to_id bigint REFERENCES posts (id) ON DELETE SET NULL,
  root_id bigint,
  echo_of_id bigint REFERENCES posts (id) ON DELETE CASCADE,
  media jsonb NOT NULL DEFAULT '[]',
  hidden boolean NOT NULL DEFAULT false,
  upvotes_count integer NOT NULL DEFAULT 0,
  replies_count integer NOT NULL DEFAULT 0,
  echoes_count integer NOT NULL DEFAULT 0,
  PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX posts_author ON posts (author_id, id DESC);
CREATE INDEX posts_reply_to ON posts (reply_to_id) WHERE reply_to_id IS NOT NULL;
CREATE INDEX posts_root ON posts (root_id, id) WHERE root_id IS NOT NULL;
CREATE INDEX posts_echo_of ON posts (echo_of_id) WHERE echo_of_id IS NOT NULL;
CREATE TABLE posts_default PARTITION OF posts DEFAULT;

CREATE FUNCTION freehold_id_floor(ts timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT greatest(0, floor(extract(epoch FROM ts) * 1000)::bigint - 1577836800000) << 22
$$;

-- Creates the monthly partitions from months_back before to months_ahead after this month.
-- Run by this migration and daily by the trends worker (maintenance).
CREATE FUNCTION freehold_ensure_post_partitions(months_back integer DEFAULT 1,
                                                months_ahead integer DEFAULT 3)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  m timestamp;
  part text;
  made integer := 0;
BEGIN
  FOR i IN -months_back..months_ahead LOOP
    m := date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i);
    part := 'posts_' || to_char(m, 'YYYY_MM');
    IF to_regclass(part) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF posts FOR VALUES FROM (%s) TO (%s)', part,
                     freehold_id_floor(m AT TIME ZONE 'UTC'),
                     freehold_id_floor((m + interval '1 month') AT TIME ZONE 'UTC'));
      made := made + 1;
    END IF;
  END LOOP;
  RETURN made;
END
$$;

DO $$ BEGIN PERFORM freehold_ensure_post_partitions(1, 3); END $$;

CREATE TABLE tags (
  tag text PRIMARY KEY,
  uses bigint NOT NULL DEFAULT 0,
  last_used_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tags_prefix ON tags (tag text_pattern_ops);

CREATE TABLE post_tags (
  tag text NOT NULL,
  post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  PRIMARY KEY (tag, post_id)
);
CREATE INDEX post_tags_post ON post_tags (post_id);

CREATE TABLE mentions (
  post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  PRIMARY KEY (post_id, account_id)
);
CREATE INDEX mentions_account ON mentions (account_id, post_id DESC);

CREATE TABLE upvotes (
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, post_id)
);
CREATE INDEX upvotes_post ON upvotes (post_id);

CREATE TABLE media (
  id bigint PRIMARY KEY,
  owner_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  s3_key text NOT NULL,
  content_type text NOT NULL,
  bytes integer NOT NULL,
  post_id bigint,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_owner ON media (owner_id);
CREATE INDEX media_post ON media (post_id) WHERE post_id IS NOT NULL;

CREATE TABLE notifications (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  kind text NOT NULL CHECK (kind IN ('follow', 'reply', 'mention', 'echo', 'upvote')),
  actor_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  post_id bigint REFERENCES posts (id) ON DELETE CASCADE,
  read boolean NOT NULL DEFAULT false
);
CREATE INDEX notifications_account ON notifications (account_id, id DESC);
CREATE INDEX notifications_unread ON notifications (account_id) WHERE NOT read;
CREATE UNIQUE INDEX notifications_once ON notifications (account_id, kind, actor_id,
                                                         coalesce(post_id, 0));

-- Moderation: one open case per target gathers all its reports; jurors vote on cases.
CREATE TABLE cases (
  id bigint PRIMARY KEY,
  target_kind text NOT NULL CHECK (target_kind IN ('post', 'account')),
  post_id bigint REFERENCES posts (id) ON DELETE CASCADE,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  reason text NOT NULL,
  severity smallint NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'removed', 'kept')),
  source text NOT NULL DEFAULT 'report' CHECK (source IN ('report', 'preflag')),
  reports_count integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz
);
CREATE INDEX cases_queue ON cases (severity, created_at) WHERE status = 'open';
CREATE UNIQUE INDEX cases_open_post ON cases (post_id)
  WHERE status = 'open' AND target_kind = 'post';
CREATE UNIQUE INDEX cases_open_account ON cases (account_id)
  WHERE status = 'open' AND target_kind = 'account';
CREATE INDEX cases_account ON cases (account_id);

CREATE TABLE reports (
  id bigint PRIMARY KEY,
  case_id bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
  reporter_id bigint REFERENCES accounts (id) ON DELETE CASCADE,
  reason text NOT NULL,
  note text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX reports_once ON reports (case_id, reporter_id);

CREATE TABLE votes (
  case_id bigint NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
  juror_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  decision text NOT NULL CHECK (decision IN ('remove', 'keep')),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (case_id, juror_id)
);

CREATE TABLE appeals (
  id bigint PRIMARY KEY,
  case_id bigint NOT NULL UNIQUE REFERENCES cases (id) ON DELETE CASCADE,
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  body text NOT NULL,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'granted', 'denied')),
  created_at timestamptz NOT NULL DEFAULT now(),
  decided_at timestamptz,
  decided_by bigint
);
CREATE INDEX appeals_open ON appeals (created_at) WHERE status = 'open';

-- Every moderation and admin action; kept after the accounts involved are deleted.
CREATE TABLE audit_log (
  id bigint PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor_id bigint,
  action text NOT NULL,
  target_kind text NOT NULL,
  target_id bigint,
  detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (id DESC);
