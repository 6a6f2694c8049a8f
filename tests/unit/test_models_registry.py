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


def test_hub_id_offline_without_local_copy_says_what_to_do(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ModelError,
        match=r"'someorg/some-bert' is neither a local directory nor in the local Hugging Face "
        r"cache, and downloads are off \(HF_HUB_OFFLINE is set\); download it on a machine "
        r"with a network \(huggingface-cli download someorg/some-bert\)",
    ):
        resolve_model_dir("someorg/some-bert")


def test_hub_id_in_the_local_cache_resolves_without_a_network(monkeypatch, tmp_path, minilm_dir):
    """The cache's own layout (models--org--name/snapshots/<commit>), as a download leaves it."""
    import shutil

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = tmp_path / "models--someorg--some-bert"
    commit = "0" * 40
    shutil.copytree(minilm_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    assert resolve_model_dir("someorg/some-bert") == repo / "snapshots" / commit


def test_a_tokenizer_folder_is_read_once_until_its_files_change(tiny_bert_dir, tmp_path):
    import json
    import shutil

    from fulcrum.models.classifier import load_tokenizer

    folder = shutil.copytree(tiny_bert_dir, tmp_path / "model")
    first = load_tokenizer(folder)
    assert load_tokenizer(folder) is first
    assert load_tokenizer(tmp_path / "." / "model") is first  # the same folder, spelt otherwise
    settings = folder / "tokenizer_config.json"
    config = json.loads(settings.read_text())
    settings.write_text(json.dumps({**config, "model_max_length": 77}))
    changed = load_tokenizer(folder)
    assert changed is not first and changed.model_max_length == 77 != first.model_max_length
