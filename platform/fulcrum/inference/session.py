"""One way to open an ONNX Runtime session, for the compress gate, the predictor behind
Serve, and the tuning cost probe alike: a variant is gated and timed with the graph and
threads it will be served with."""

from __future__ import annotations

from pathlib import Path

from fulcrum.errors import ArtifactError

# ONNX Runtime's CPU SkipLayerNormalization kernel took 28 ms of a 126 ms batch of 32x64
# tokens (dynamic INT8 MiniLM, 2 threads, onnxruntime 1.32), where the Add and
# LayerNormalization it replaces take 6.4 ms together. The session would fuse the pair
# again at load time unless told not to; on CUDA the fused kernel is the fast one.
CPU_SLOWER_FUSIONS = ["SkipLayerNormFusion"]


def providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def open_session(
    path: str | Path, threads: int | None = None, cpu_only: bool = False, spin: bool = True
):
    """`threads`: this process's CPU share (intra-op threads; more than that only contend).
    `spin`: idle intra-op threads busy-wait for the next call (ONNX Runtime's default: the
    lowest latency when the session has the cores to itself). A server shares its cores
    with the HTTP stack and turns it off. A file ONNX Runtime cannot load raises
    ArtifactError naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    chosen = ["CPUExecutionProvider"] if cpu_only else providers()
    disabled = CPU_SLOWER_FUSIONS if chosen == ["CPUExecutionProvider"] else []
    try:
        return ort.InferenceSession(
            str(path), options, providers=chosen, disabled_optimizers=disabled
        )
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        raise ArtifactError(f"{path}: ONNX Runtime cannot load it ({error})") from None
