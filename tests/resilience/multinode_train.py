"""Run by test_node_loss.py in its own process: a simulated cluster (a head node with no
CPUs and 1-CPU worker nodes) so the two training ranks must land on different nodes, with
checkpoints in one shared storage path. With `kill_after`, a third worker node stands by
(as an autoscaler would bring one), and once Ray has registered `kill_after` checkpoints a node running
a rank is removed without warning: its raylet and every process on it die, as in a crash.
Writes what it did as JSON to argv[2]."""

import json
import os
import sys
import threading
import time
from pathlib import Path

from ray.cluster_utils import Cluster
from registered import registered  # beside this script

from fulcrum.log import configure as configure_output
from fulcrum.recipe import validate_recipe
from fulcrum.runtime import unclaimed_port
from fulcrum.train.stage import run_name, train

NODE = {"num_cpus": 1, "object_store_memory": 150 * 2**20}
# How soon the head gives up on a node that stops answering: a second of silence, twice,
# where Ray's default waits about fifteen; what a real cluster takes, minus the waiting.
DEATH_DETECTION = {"health_check_period_ms": 1000, "health_check_failure_threshold": 2}


def lose_a_node(cluster: Cluster, checkpoints: Path, kill_after: int, report: dict) -> None:
    """Remove a node that runs a rank. Not the node this driver attached to: on one machine
    Ray may attach it to any node, and on a real cluster the driver's node is the head."""
    import ray
    from ray.util.state import list_actors

    # Find the ranks' nodes while the run starts, so the kill follows the checkpoint at once
    # (asking the state API after it can take longer than the rest of a tiny run).
    deadline = time.time() + 300
    driver_node = ray.get_runtime_context().get_node_id()
    victim = None
    while victim is None and time.time() < deadline:
        ranks = list_actors(
            filters=[("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")]
        )
        rank_nodes = {actor["node_id"] for actor in ranks} - {driver_node}
        victim = next((node for node in cluster.worker_nodes if node.node_id in rank_nodes), None)
        time.sleep(0.05)
    while time.time() < deadline and len(registered(checkpoints)) < kill_after:
        time.sleep(0.05)
    if victim is None or len(registered(checkpoints)) < kill_after:
        return
    report["lost"] = victim.node_id
    report["checkpoints_at_loss"] = len(registered(checkpoints))
    cluster.remove_node(victim, allow_graceful=False)


def main() -> None:
    configure_output()  # the [train] lines the test reads, as the CLI prints them
    recipe = validate_recipe(json.loads(sys.argv[1]))
    kill_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    # Its own dashboard port (the state API that finds the ranks goes through the dashboard),
    # so a Ray instance already holding 8265 on this machine does not take it away.
    dashboard_port = unclaimed_port()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "object_store_memory": 150 * 2**20,
            "dashboard_port": dashboard_port,
            "_system_config": DEATH_DETECTION,
        },
    )
    for _ in range(3 if kill_after else 2):
        cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    import ray

    os.environ["RAY_ADDRESS"] = cluster.address
    ray.init(address=cluster.address)
    report: dict = {"head": cluster.head_node.node_id}
    killer = None
    if kill_after:
        checkpoints = Path(recipe.train.storage_path) / run_name(recipe)
        killer = threading.Thread(
            target=lose_a_node, args=(cluster, checkpoints, kill_after, report)
        )
        killer.start()
    try:
        started = time.time()
        report["artifact"] = str(train(recipe))
        report["train_s"] = round(time.time() - started, 1)
    finally:
        if killer is not None:
            killer.join()
        with open(sys.argv[2], "w") as handle:
            json.dump(report, handle)
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
