"""Many tasks at once: `autoconn bench DIR --workers N | --ray [ADDRESS]` and `autoconn induce A B ...`.

- jobs: what one task's worker is handed (`TaskJob`) and returns (`TaskResult`); `induce_one`.
- runners: in this process, a local process pool, or Ray tasks; a dead worker's task is retried once.
- batch: the driver: registers every verified entry in the one library, keeps runs/bench-ID/report.json.
"""
