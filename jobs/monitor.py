"""Opinion monitoring as a Ray job (`fulcrum monitor`), for a scheduler the user owns (cron,
Airflow) to start each hour or day; a run scores only the input files it has not scored
before, and rewrites the aggregates, alerts, timelines and report from all of them:

    ray job submit --working-dir . -- python jobs/monitor.py examples/stocknet_monitor.yaml
"""

import sys

from fulcrum.cli import main

if __name__ == "__main__":
    sys.exit(main(["monitor", *sys.argv[1:]]))
