"""The fields each kind of manifest needs beyond the common ones, for tests that publish
hand-made artifacts (a test artifact is a real manifest, checked as a stage's is)."""

KIND_FIELDS = {
    "train": {
        "task": "sequence_classification",
        "base_model": "builtin:minilm",
        "method": "lora",
        "settled_recipe": {"name": "t", "model": {"max_length": 16}},
        "split_sizes": {"train": 8, "validation": 2, "test": 2},
        "deepspeed": {"zero_optimization": {"stage": 0}},
    },
    "export": {
        "task": "sequence_classification",
        "max_length": 16,
        "vocab_size": 100,
        "onnx": {"opset": 18},
        "deployable": True,
    },
    "compress": {"variants": []},
    "tune": {"best_recipe": "best_recipe.yaml", "search_space": [], "searched": {}},
}
