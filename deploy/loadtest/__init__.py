"""`freehold loadtest`: seed, run and calibrate Locust load tests sized to the surge (issue 7).

- `seed`: app.seed's COPY-based dataset plus the load-test roster (members with sessions);
- `plan`: target, scale factor and the shape's steps from the capacity profile;
- `runner`: Locust master and workers as child processes (never imported here);
- `analysis`: per-step tables and SLO gates from the recorder's steps.json;
- `calibrate`: the highest passing requests/s of one app server into calibration.json.
"""
