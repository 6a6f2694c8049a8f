"""A model run inside the gateway (`colocate: true`): one model only, and called the way a
DeploymentHandle is, so the gateway's code is the same either way."""

import asyncio
import sys

import pytest
from pydantic import ValidationError

from ..conftest import REPOSITORY

sys.path.insert(0, str(REPOSITORY))
from serve.config import AppArgs  # noqa: E402
from serve.models import InProcess  # noqa: E402


def test_colocate_takes_exactly_one_model():
    one = {"name": "a", "artifact": "/x/export"}
    assert AppArgs(models=[one], colocate=True).colocate
    with pytest.raises(ValidationError, match="colocate: runs one model inside the gateway, and 2"):
        AppArgs(models=[one, {**one, "name": "b"}], colocate=True)


def test_in_process_model_answers_like_a_handle():
    class Fake:
        def __init__(self):
            self.calls = []

        async def predict(self, texts):
            self.calls.append(texts)
            return [text.upper() for text in texts]

        def ready(self):
            return True

    fake = Fake()
    model = InProcess(fake)

    async def use():
        answers = await model.predict.remote(["a", "b"])
        ready = await asyncio.wait_for(model.ready.remote(), 1.0)
        return answers, ready

    assert asyncio.run(use()) == (["A", "B"], True)
    assert fake.calls == [["a", "b"]]
