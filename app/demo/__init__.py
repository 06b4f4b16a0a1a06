"""The demo network a newcomer sees first: people who post photos, reply, echo, upvote, use
hashtags and mentions, follow each other and the demo admin, and a report waiting in the jury
queue. One builder (app.demo.builder) serves `python -m freehold.app.dev` and the lab's
`freehold up` (`python -m freehold.app.demo` on an app server); lab and development data only."""
