"""What a loaded model is (`Model`, its inputs and outputs as `TensorSpec`s, in the order of its
signature) and how a model file is read: Keras 3, Keras 2 .h5, SavedModel and .tflite here, ONNX and
.pt2 in torch_formats.py."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq.errors import BadInput
from edgeq.graph import NUMPY_DTYPES, read_graph
from edgeq.load.fold import fold_constant_weights

FORMATS = ("keras", "h5", "saved_model", "tflite", "onnx", "pt2")
SOURCE_FORMATS = ("keras", "h5", "saved_model")  # the TensorFlow converter itself reads these (fp16, dynamic-int8)
TORCH_FORMATS = ("onnx", "pt2")  # converted to a float .tflite through PyTorch and litert-torch
# The ONNX opsets edgeq reads: onnx2torch's lowest, up to the newest the installed onnx knows; opsets
# above ONNX_TARGET_OPSET are converted down to it (onnx.version_converter) before onnx2torch reads them.
ONNX_MIN_OPSET = 9
ONNX_TARGET_OPSET = 17
TORCH_EXTRA = "pip install 'edgeq[torch]'"


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]  # without the batch dimension
    dtype: str  # numpy dtype name
    quantized: bool = False  # an integer tensor with a scale: float data is quantized into it when run
    # The model's own shape when it differs from `shape` only by the channel's place: an ONNX or
    # PyTorch model's NCHW (channels first) input, whose converted model takes NHWC.
    source_shape: tuple[int, ...] | None = None
    source_layout: str = ""  # e.g. "NCHW", naming source_shape's layout; "NHWC" names shape's then
    name: str = ""  # as the model's signature names it: data files and reports use it


@dataclass(frozen=True)
class Model:
    path: Path
    format: str  # one of FORMATS
    name: str
    sha256: str
    inputs: tuple[TensorSpec, ...]  # in the order of the model's signature
    outputs: tuple[TensorSpec, ...]
    keras: Any = None  # the Keras (3 or tf_keras) model, for keras/h5
    saved_model: Any = None  # the loaded SavedModel, for saved_model
    tflite: bytes | None = None  # the flatbuffer, for tflite
    quantized: str | None = None  # "int8" or "int16x8": a .tflite that came quantized, deployed as it is
    opset: int | None = None  # an ONNX model's default-domain opset
    # A float .tflite whose constant weights were folded to float32 (edgeq.load.fold): the file as given,
    # "fp16" when its weights came as float16 (then the model in fp16 is that file), and what was folded.
    as_given: bytes | None = None
    weights_as_given: str | None = None
    folded: tuple[str, ...] = ()

    @property
    def input(self) -> TensorSpec:
        """The one input, for what handles models with one input only (and says so)."""
        return single(self.inputs, self.path, "input")

    @property
    def output(self) -> TensorSpec:
        return single(self.outputs, self.path, "output")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():  # a SavedModel: its graph and variables identify it
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode())
            h.update(f.read_bytes())
        return h.hexdigest()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return "saved_model"
        raise BadInput(f"{path}: a directory without saved_model.pb is not a SavedModel")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return "keras"
    if suffix in (".h5", ".hdf5"):
        return "h5"
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".onnx":
        return "onnx"
    if suffix == ".pt2":
        return "pt2"
    raise BadInput(f"{path}: unsupported model file '{suffix or path.name}' "
                   "(edgeq reads .keras, .h5, SavedModel directories, .tflite, .onnx and torch.export .pt2)")


def tensor_spec(shape, dtype, path: Path, what: str) -> TensorSpec:
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise BadInput(f"{path}: the {what} shape {tuple(shape)} has unknown dimensions besides the batch; "
                       "microcontroller runtimes need a fixed shape")
    return TensorSpec(tuple(int(d) for d in dims), np.dtype(getattr(dtype, "name", dtype)).name)


def single(tensors, path: Path, what: str):
    """The one of `tensors`, for a step that handles one input (or output) only, which it says."""
    if len(tensors) != 1:
        raise BadInput(f"{path}: the model has {len(tensors)} {what}s; this step handles models with one {what}")
    return tensors[0]


def named(spec: TensorSpec, name: str) -> TensorSpec:
    return dataclasses.replace(spec, name=name)


def _load_keras(path: Path):
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as keras3_error:
        if path.suffix.lower() not in (".h5", ".hdf5"):
            raise BadInput(f"{path}: Keras could not read the model ({keras3_error})") from keras3_error
        # Keras 3 cannot read every Keras 2 HDF5 file (custom layers, legacy configs); tf_keras can.
        try:
            import tf_keras
        except ImportError:
            raise BadInput(f"{path}: Keras 3 could not read this Keras 2 file ({keras3_error}); tf_keras can: "
                           "pip install 'edgeq[legacy-keras]'") from None
        try:
            return tf_keras.models.load_model(path, compile=False)
        except Exception as keras2_error:
            raise BadInput(f"{path}: neither Keras 3 ({keras3_error}) nor tf_keras ({keras2_error}) "
                           "could read the model") from keras2_error


def came_quantized(graph) -> str | None:
    """'int8' or 'int16x8' for a fully quantized model (its weights int8, its activations int8 or
    int16), None for a float or dynamic-range one."""
    weighted = [op for op in graph.operators if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
                and len(op.inputs) > 1 and op.inputs[1] >= 0 and op.outputs]
    weights = [graph.tensors[op.inputs[1]] for op in weighted]
    activations = {graph.tensors[op.outputs[0]].type for op in weighted}
    if not weights or any(w.type not in ("INT8", "INT4") for w in weights):
        return None
    if activations == {"INT8"}:
        return "int8"
    if activations == {"INT16"}:
        return "int16x8"
    return None


def model_identity(path: Path) -> dict:
    """The fields of a Model that identify its file: path, format, name, SHA-256."""
    return dict(path=path, format=detect_format(path), name=path.stem if path.is_file() else path.name,
                sha256=file_sha256(path))


def load_tensorflow_model(path: Path, common: dict) -> Model:
    """A .tflite, SavedModel, Keras 3 or Keras 2 .h5 model (`common`: its model_identity)."""
    fmt = common["format"]
    if fmt == "tflite":
        data = path.read_bytes()
        graph = read_graph(data, str(path))
        quantized = came_quantized(graph)
        folded = fold_constant_weights(data, str(path)) if quantized is None else None
        inputs, outputs = graph.input_tensors(), graph.output_tensors()
        floating = [t for t in inputs if t.type != "FLOAT32"]
        if quantized is None and floating:
            raise BadInput(f"{path}: the input '{floating[0].name}' is {floating[0].type} but the model's weights are "
                           "not int8: edgeq takes a float .tflite (and quantizes it), or an int8 or int16x8 one "
                           "(deployed as it is)")

        def spec(t, what: str, float_dtype) -> TensorSpec:
            dtype = float_dtype if quantized is None else NUMPY_DTYPES[t.type]
            return dataclasses.replace(tensor_spec(t.shape, dtype, path, what), quantized=bool(t.scales),
                                       name=graph.io_name(t.index))

        extra = {}
        if folded is not None and folded.ops:
            extra = dict(tflite=folded.tflite, as_given=data, folded=folded.ops,
                         weights_as_given="fp16" if folded.fp16_weights else None)
        return Model(**common, inputs=tuple(spec(t, "input", np.float32) for t in inputs),
                     outputs=tuple(spec(t, "output", np.float32) for t in outputs),
                     **{"tflite": data, "quantized": quantized, **extra})
    if fmt == "saved_model":
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
            fn = loaded.signatures["serving_default"]
        except KeyError:
            raise BadInput(f"{path}: the SavedModel has no 'serving_default' signature") from None
        except Exception as exc:
            raise BadInput(f"{path}: TensorFlow could not load the SavedModel ({exc})") from exc
        args, outs = fn.structured_input_signature[1], fn.structured_outputs
        return Model(**common,
                     inputs=tuple(named(tensor_spec(t.shape, t.dtype.as_numpy_dtype, path, "input"), k)
                                  for k, t in args.items()),
                     outputs=tuple(named(tensor_spec(t.shape, t.dtype.as_numpy_dtype, path, "output"), k)
                                   for k, t in outs.items()), saved_model=loaded)
    model = _load_keras(path)
    output_names = list(getattr(model, "output_names", None) or _keras_output_names(model.outputs))
    return Model(**common,
                 inputs=tuple(named(tensor_spec(t.shape, t.dtype, path, "input"), _keras_name(t))
                              for t in model.inputs),
                 outputs=tuple(named(tensor_spec(t.shape, t.dtype, path, "output"), name)
                               for t, name in zip(model.outputs, output_names)), keras=model)


def _keras_output_names(outputs) -> list[str]:
    """A Keras 3 model's outputs named by the layers that make them ("scores", not "keras_tensor_35"),
    each name once (a layer with several outputs numbers them)."""
    names = []
    for tensor in outputs:
        history = getattr(tensor, "_keras_history", None)
        names.append(history[0].name if history else _keras_name(tensor))
    return [name if names.count(name) == 1 else f"{name}_{names[:k].count(name)}" for k, name in enumerate(names)]


def _keras_name(tensor) -> str:
    """A Keras input's name: its Input layer's (Keras 3 tensors carry it; tf_keras ones end in ':0')."""
    name = getattr(tensor, "name", "") or ""
    return name[:-2] if name.endswith(":0") else name
