"""Failover drills (issue 21): a fault on the lab (or a planned switchover on real servers) while
steady writes and reads go through every site's virtual IP, measured as users see it.

events: what each request saw, and the outages, losses and errors computed from it (pure).
traffic: the writers and readers (HTTPS through each virtual IP, certificate checked).
watch: the PostgreSQL members' roles sampled during the drill (two writable primaries?) and the
checks that the cluster is protected again (synchronous standby, Redis replicas, WAL archiving).
scenarios: the faults, each with its restore and its targets. runner: one drill end to end.
report: the table, the JSON document, the PNG timeline and the suite's HTML page.
The scenarios' own checks: accounts (the drill's own, signed up through the public API),
followers (every acknowledged post in each follower's home feed), media (images uploaded and
read during the fault, every one read back by checksum).
"""
