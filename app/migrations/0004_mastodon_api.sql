-- depends: 0003_loadtest_accounts
-- The Mastodon client API (issue 23): OAuth 2 applications and tokens, and timeline markers.
-- Secrets are stored as sha256 digests only: client secrets, access and refresh tokens.
-- Authorization codes live in Redis for a few minutes (app.services.oauth), never here.
CREATE TABLE oauth_apps (
  id bigint PRIMARY KEY,
  client_id text NOT NULL UNIQUE,
  secret_hash bytea NOT NULL,
  name text NOT NULL,
  website text,
  redirect_uris text[] NOT NULL,
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE oauth_tokens (
  id bigint PRIMARY KEY,
  token_hash bytea NOT NULL UNIQUE,
  refresh_hash bytea UNIQUE,
  app_id bigint NOT NULL REFERENCES oauth_apps (id) ON DELETE CASCADE,
  -- NULL: an app token (client_credentials), acting for no account
  account_id bigint REFERENCES accounts (id) ON DELETE CASCADE,
  scopes text[] NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_tokens_account ON oauth_tokens (account_id) WHERE account_id IS NOT NULL;
CREATE INDEX oauth_tokens_app ON oauth_tokens (app_id);

CREATE TABLE markers (
  account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
  timeline text NOT NULL CHECK (timeline IN ('home', 'notifications')),
  last_read_id bigint NOT NULL,
  version integer NOT NULL DEFAULT 1,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, timeline)
);

-- an image's description (alt text), set by Mastodon clients before they post it
ALTER TABLE media ADD COLUMN description text;
