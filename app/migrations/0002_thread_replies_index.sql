-- depends: 0001_schema
-- A thread's replies are paged oldest first from a cursor (id > cursor ORDER BY id LIMIT n):
-- index them by (reply_to_id, id), so a page of a post with many replies reads just that page.
DROP INDEX posts_reply_to;
CREATE INDEX posts_reply_to ON posts (reply_to_id, id) WHERE reply_to_id IS NOT NULL;
