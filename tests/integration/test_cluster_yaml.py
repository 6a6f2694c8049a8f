"""Every YAML shipped in cluster/ validates against its consumer."""

from pathlib import Path

import pytest
import yaml

REPOSITORY = Path(__file__).resolve().parents[2]


def test_serve_config_validates_against_ray_serve_schema():
    from ray.serve.schema import ServeDeploySchema

    config = ServeDeploySchema.model_validate(
        yaml.safe_load((REPOSITORY / "cluster" / "serve.yaml").read_text())
    )
    (application,) = config.applications
    assert application.import_path == "fulcrum.serve.app:build_app"
    assert config.http_options.host == "127.0.0.1"


def test_serve_config_args_validate_against_the_typed_builder():

    from fulcrum.serve.app import AppArgs

    config = yaml.safe_load((REPOSITORY / "cluster" / "serve.yaml").read_text())
    args = AppArgs.model_validate(config["applications"][0]["args"])
    assert [(model.name, model.artifact) for model in args.models] == [
        ("demo", "artifacts/demo/compress/variants/dynamic-int8")
    ]
    assert all(m.max_ongoing_requests >= m.max_batch_size for m in args.models)
    with pytest.raises(Exception, match="max_batch_sise"):
        AppArgs.model_validate({**config["applications"][0]["args"], "max_batch_sise": 4})
    model = config["applications"][0]["args"]["models"][0]
    with pytest.raises(Exception, match="models.0.autoscaling.max_replicas"):
        AppArgs.model_validate({"models": [{**model, "autoscaling": {"max_replicas": 0}}]})


def test_cluster_launcher_config_validates_against_rays_schema():
    import json

    import jsonschema
    import ray
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPOSITORY / "cluster" / "aws.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))  # what `ray up` runs, with the provider defaults
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}
    assert nodes["gpu-worker"]["node_config"]["InstanceType"].startswith(("g5", "g6", "p4", "p5"))
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    broken = {**config, "available_node_types": {"head": {"resources": {}}}}
    with pytest.raises(jsonschema.ValidationError, match="node_config"):
        jsonschema.validate(broken, schema)


def test_rayservice_serves_a_valid_config_on_the_pinned_ray():
    import ray
    from ray.serve.schema import ServeDeploySchema

    from fulcrum.serve.app import AppArgs

    manifest = yaml.safe_load((REPOSITORY / "cluster" / "rayservice.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    spec = manifest["spec"]
    serve_config = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"]))
    (application,) = serve_config.applications
    args = AppArgs.model_validate(application.args)
    assert args.auth_token_env == "FULCRUM_TOKEN"
    assert all(model.artifact.startswith("/mnt/shared/") for model in args.models)
    cluster = spec["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    groups = {group["groupName"]: group for group in cluster["workerGroupSpecs"]}
    gpu = groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1"
    for pod in [cluster["headGroupSpec"], *groups.values()]:
        (container,) = pod["template"]["spec"]["containers"]
        env = {item["name"] for item in container["env"]}
        assert "FULCRUM_TOKEN" in env, "the token the gateway asks for reaches every node"
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/mnt/shared" in mounts
    dockerfile = (REPOSITORY / "cluster" / "Dockerfile").read_text()
    assert f"BASE=rayproject/ray:{ray.__version__}-" in dockerfile
