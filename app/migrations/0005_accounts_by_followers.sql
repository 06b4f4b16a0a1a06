-- depends: 0004_mastodon_api
-- Account search ranks the accounts whose username or display name starts with the query by
-- followers (app.services.search): a short prefix matches a large share of all accounts, and
-- this index lets PostgreSQL walk them most followed first and stop at the page instead of
-- reading and sorting every match.
CREATE INDEX accounts_by_followers ON accounts (followers_count DESC, username);
