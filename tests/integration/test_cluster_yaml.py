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
    assert application.import_path == "serve.app:build_app"
    assert config.http_options.host == "127.0.0.1"


def test_serve_config_args_validate_against_the_typed_builder():
    import sys

    sys.path.insert(0, str(REPOSITORY))
    from serve.app import AppArgs

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
