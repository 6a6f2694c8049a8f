"""A model run inside the gateway (`colocate`, the default for one model): one model only,
and called the way a DeploymentHandle is, so the gateway's code is the same either way."""

import asyncio

import pytest
from pydantic import ValidationError

from fulcrum.serve.config import AppArgs
from fulcrum.serve.models import InProcess


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


def test_one_model_is_colocated_unless_told_otherwise():
    one = {"name": "a", "artifact": "/x/export"}
    two = [one, {**one, "name": "b"}]
    assert AppArgs(models=[one]).colocated
    assert not AppArgs(models=[one], colocate=False).colocated
    assert not AppArgs(models=two).colocated
