"""`freehold loadtest`: seed, run and calibrate Locust load tests sized to the surge (issue 7).

- `seed`: app.seed's COPY-based dataset of load-test accounts (marked, reserved prefix) plus the
  roster (members with this run's password and sessions); `clean` deletes them all; a target
  that is not the lab needs --production-ok;
- `plan`: target, scale factor and the shape's steps from the capacity profile;
- `runner`: Locust master and workers as child processes (never imported here);
- `analysis`: per-step tables and SLO gates from the recorder's steps.json;
- `calibrate`: the highest passing requests/s of one app server into calibration.json, per
  app CPU-second (`cpuaccount`: the arithmetic; `cpusample`: the app's CPU, locally or over
  SSH).
"""
