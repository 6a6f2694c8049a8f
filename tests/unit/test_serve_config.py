"""A recipe's serve section and a Serve config's `args:` are one list of settings: every
value a recipe sets reaches the application, and both refuse the same mistakes."""

import pytest
from pydantic import ValidationError

from fulcrum.recipe import ServeSection
from fulcrum.serve.config import AppArgs
from fulcrum.serve_settings import GatewaySettings, ReplicaSettings


def _changed(model: type, autoscaling: dict) -> dict:
    """A value other than the default for every field (the defaults would pass unread)."""
    changed = {}
    for name, field in model.model_fields.items():
        if name == "autoscaling":
            changed[name] = autoscaling
        elif field.annotation in (int, float):
            changed[name] = field.default + 3
        elif name == "colocate":
            changed[name] = True
        elif name == "auth_token_env":
            changed[name] = "MY_TOKEN"
        elif name == "rank_prefilter":
            changed[name] = 7
        elif name == "rank_embedder":
            changed[name] = "builtin:multilingual"
        elif name == "traffic_log":
            changed[name] = "/var/log/fulcrum"
    # auth_token_file would conflict with auth_token_env; every other field is changed.
    assert set(changed) == set(model.model_fields) - {"auth_token_file"}, set(changed)
    return changed


def test_every_serve_setting_of_a_recipe_reaches_the_application():
    autoscaling = {"min_replicas": 2, "max_replicas": 5, "look_back_period_s": 12.0}
    replicas = _changed(ReplicaSettings, autoscaling)
    gateway = _changed(GatewaySettings, autoscaling)
    section = ServeSection(port=8123, **replicas, **gateway)

    args = AppArgs.serving({"posts": "/models/posts/export"}, section, force=True)

    (model,) = args.models
    assert (model.name, model.artifact, model.force) == ("posts", "/models/posts/export", True)
    assert model.model_dump(include=set(replicas) - {"autoscaling"}) == {
        k: v for k, v in replicas.items() if k != "autoscaling"
    }
    assert model.autoscaling.model_dump(include=set(autoscaling)) == autoscaling
    assert args.model_dump(include=set(gateway)) == gateway
    assert args.auth_token_env == "MY_TOKEN" and args.colocated


def test_recipe_and_serve_config_refuse_the_same_mistakes():
    for bad, message in [
        ({"autoscaling": {"min_replicas": 3, "max_replicas": 1}}, "max_replicas \\(1\\)"),
        ({"auth_token_env": "A", "auth_token_file": "/a"}, "give one token source"),
        ({"max_batch_sise": 4}, "max_batch_sise"),
    ]:
        with pytest.raises(ValidationError, match=message):
            ServeSection(**bad)
        with pytest.raises(ValidationError, match=message):
            AppArgs(
                models=[{"name": "a", "artifact": "/a", **_replica_part(bad)}], **_app_part(bad)
            )


def _replica_part(values: dict) -> dict:
    return {k: v for k, v in values.items() if k not in GatewaySettings.model_fields}


def _app_part(values: dict) -> dict:
    return {k: v for k, v in values.items() if k in GatewaySettings.model_fields}


def test_the_port_serve_is_told_is_free_and_outside_the_ranges_other_sockets_draw_from():
    import socket

    from fulcrum.runtime import ABOVE_RAY_WORKER_PORTS, _ephemeral_ports_start, unclaimed_port

    ports = {unclaimed_port() for _ in range(20)}
    assert all(ABOVE_RAY_WORKER_PORTS <= port < _ephemeral_ports_start() for port in ports)
    assert len(ports) > 1  # drawn at random: two test sessions rarely pick the same
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports.pop()))  # free indeed
