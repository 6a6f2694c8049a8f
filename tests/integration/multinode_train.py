"""Run by test_multinode.py in its own process: a simulated cluster (a head node with no
CPUs and two 1-CPU worker nodes) so the two training ranks must land on different nodes,
with checkpoints in one shared storage path. Writes what it did as JSON to argv[2]."""

import json
import sys

from ray.cluster_utils import Cluster

from fulcrum.recipe import validate_recipe
from fulcrum.train.stage import train


def main() -> None:
    recipe_dict = json.loads(sys.argv[1])
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 150 * 2**20}
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1, object_store_memory=150 * 2**20)
    cluster.wait_for_nodes()
    import os

    import ray

    os.environ["RAY_ADDRESS"] = cluster.address
    ray.init(address=cluster.address)
    try:
        head = cluster.head_node.node_id
        artifact = train(validate_recipe(recipe_dict))
        with open(sys.argv[2], "w") as handle:
            json.dump({"artifact": str(artifact), "head": head}, handle)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
