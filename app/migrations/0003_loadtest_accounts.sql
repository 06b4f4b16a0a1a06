-- depends: 0002_thread_replies_index
-- Load-test accounts (issue 18): made only by the seeder (`freehold loadtest seed`, app.seed), with
-- usernames under the prefix sign-up refuses (app.services.accounts.LOADTEST_PREFIX). The
-- seeder writes to, and `freehold loadtest clean` deletes, only accounts carrying this mark.
ALTER TABLE accounts ADD COLUMN loadtest boolean NOT NULL DEFAULT false;
CREATE INDEX accounts_loadtest ON accounts (id) WHERE loadtest;
