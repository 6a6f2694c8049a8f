import pytest

from fulcrum.errors import ModelError
from fulcrum.models.registry import resolve_model_dir


def test_builtin_minilm_resolves_to_shipped_weights():
    directory = resolve_model_dir("builtin:minilm")
    assert (directory / "config.json").is_file()
    assert (directory / "model.safetensors").is_file()


def test_unknown_builtin():
    known = r"\(known: builtin:minilm, builtin:multilingual\)"
    with pytest.raises(ModelError, match=rf"unknown built-in model 'builtin:gpt9' {known}"):
        resolve_model_dir("builtin:gpt9")


def test_local_directory(tiny_bert_dir):
    assert resolve_model_dir(str(tiny_bert_dir)) == tiny_bert_dir


def test_local_directory_without_config(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        resolve_model_dir(str(tmp_path))


def test_missing_local_path():
    with pytest.raises(ModelError, match="directory './no/such/model' does not exist"):
        resolve_model_dir("./no/such/model")


def test_hub_id_without_local_copy_is_refused_not_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(
        ModelError,
        match="'someorg/some-bert' is neither a local directory nor in the local Hugging Face cache",
    ):
        resolve_model_dir("someorg/some-bert")
