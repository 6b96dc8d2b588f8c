"""Load a trained model (Keras 3, Keras 2 .h5, SavedModel, float .tflite, ONNX, a torch.export .pt2)
and its data sets.

An ONNX or .pt2 model is read and checked here (its opset, its input, a free batch fixed at 1);
the convert stage turns it into a float .tflite whose input is channel-last (docs/onnx-pytorch.md),
so its Model's input is that NHWC shape and its `source_shape` the model's own NCHW one: data in
either layout is accepted.

Data sets are checked against the model's input here, once, so that later stages can trust
them: every sample has the model's input shape, a numeric dtype and finite values.
"""

from __future__ import annotations

from pathlib import Path

from edgeq.errors import BadInput
from edgeq.load.data import (
    Arrays,
    Dataset,
    Samples,
    arrays_sha256,
    check_dataset,
    load_data,
    load_dataset,
    random_dataset,
    read_arrays,
)
from edgeq.load.model import (
    FORMATS,
    ONNX_MIN_OPSET,
    ONNX_TARGET_OPSET,
    SOURCE_FORMATS,
    TORCH_EXTRA,
    TORCH_FORMATS,
    Model,
    TensorSpec,
    came_quantized,
    detect_format,
    file_sha256,
    load_tensorflow_model,
    model_identity,
)

__all__ = ["Arrays", "Samples", "FORMATS", "ONNX_MIN_OPSET", "ONNX_TARGET_OPSET", "SOURCE_FORMATS", "TORCH_EXTRA", "TORCH_FORMATS",
           "Dataset", "Model", "TensorSpec", "arrays_sha256", "came_quantized", "check_dataset", "detect_format",
           "file_sha256", "load_data", "load_dataset", "load_model", "load_torch", "random_dataset", "read_arrays"]


def load_model(path: str | Path) -> Model:
    """Read a model file or SavedModel directory; errors name the path and the reason."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    common = model_identity(path)
    if common["format"] in TORCH_FORMATS:
        import edgeq.load.torch_formats as torch_formats  # torch is heavy: imported for such models only

        return (torch_formats.load_onnx(path, common) if common["format"] == "onnx" else
                torch_formats.load_pt2(path, common))
    return load_tensorflow_model(path, common)


def load_torch(module, example, directory: str | Path | None = None, name: str | None = None) -> Model:
    """A PyTorch nn.Module and an example input (NCHW, batch 1) as an edgeq Model, through a .pt2
    file (edgeq.load.torch_formats.load_torch)."""
    import edgeq.load.torch_formats as torch_formats  # torch is heavy: imported when asked for

    return torch_formats.load_torch(module, example, directory, name)
