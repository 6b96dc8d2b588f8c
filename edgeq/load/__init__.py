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

import dataclasses
import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeq import console
from edgeq.errors import BadInput
from edgeq.graph import NUMPY_DTYPES, read_graph

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


@dataclass(frozen=True)
class Model:
    path: Path
    format: str  # one of FORMATS
    name: str
    sha256: str
    input: TensorSpec
    output: TensorSpec
    keras: Any = None  # the Keras (3 or tf_keras) model, for keras/h5
    saved_model: Any = None  # the loaded SavedModel, for saved_model
    tflite: bytes | None = None  # the flatbuffer, for tflite
    quantized: str | None = None  # "int8" or "int16x8": a .tflite that came quantized, deployed as it is
    opset: int | None = None  # an ONNX model's default-domain opset


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (samples, *input shape)
    y: np.ndarray | None  # class ids or targets, or None
    source: str
    synthetic: bool = False  # random inputs: no accuracy can be claimed

    def __len__(self) -> int:
        return len(self.x)

    @property
    def has_class_labels(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)


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


def arrays_sha256(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
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


def _spec(shape, dtype, path: Path, what: str) -> TensorSpec:
    dims = tuple(shape)[1:]
    if any(d is None for d in dims):
        raise BadInput(f"{path}: the {what} shape {tuple(shape)} has unknown dimensions besides the batch; "
                       "microcontroller runtimes need a fixed shape")
    return TensorSpec(tuple(int(d) for d in dims), np.dtype(getattr(dtype, "name", dtype)).name)


def _single(tensors, path: Path, what: str):
    if len(tensors) != 1:
        raise BadInput(f"{path}: the model has {len(tensors)} {what}s; edgeq handles models with one {what}")
    return tensors[0]


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


def load_torch(module, example, directory: str | Path | None = None, name: str | None = None) -> Model:
    """A PyTorch nn.Module and an example input (NCHW, batch 1) as an edgeq Model, through a .pt2
    file (edgeq.load.torch_formats.load_torch)."""
    from edgeq.load import torch_formats

    return torch_formats.load_torch(module, example, directory, name)


def load_model(path: str | Path) -> Model:
    """Read a model file or SavedModel directory; errors name the path and the reason."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"{path}: no such file or directory")
    fmt = detect_format(path)
    common = dict(path=path, format=fmt, name=path.stem if path.is_file() else path.name, sha256=file_sha256(path))
    if fmt in TORCH_FORMATS:
        from edgeq.load import torch_formats

        return torch_formats.load_onnx(path, common) if fmt == "onnx" else torch_formats.load_pt2(path, common)
    if fmt == "tflite":
        data = path.read_bytes()
        graph = read_graph(data, str(path))
        inp = _single(graph.input_tensors(), path, "input")
        out = _single(graph.output_tensors(), path, "output")
        quantized = came_quantized(graph)
        if quantized is None and inp.type != "FLOAT32":
            raise BadInput(f"{path}: the input is {inp.type} but the model's weights are not int8: edgeq takes a float "
                           ".tflite (and quantizes it), or an int8 or int16x8 one (deployed as it is)")
        dtype = np.float32 if quantized is None else NUMPY_DTYPES[inp.type]
        input_spec = dataclasses.replace(_spec(inp.shape, dtype, path, "input"), quantized=bool(inp.scales))
        return Model(**common, input=input_spec,
                     output=_spec(out.shape, NUMPY_DTYPES[out.type] if quantized else np.float32, path, "output"),
                     tflite=data, quantized=quantized)
    if fmt == "saved_model":
        import tensorflow as tf

        try:
            loaded = tf.saved_model.load(str(path))
            fn = loaded.signatures["serving_default"]
        except KeyError:
            raise BadInput(f"{path}: the SavedModel has no 'serving_default' signature") from None
        except Exception as exc:
            raise BadInput(f"{path}: TensorFlow could not load the SavedModel ({exc})") from exc
        args = fn.structured_input_signature[1]
        inp = _single(list(args.values()), path, "input")
        out = _single(list(fn.structured_outputs.values()), path, "output")
        return Model(**common, input=_spec(inp.shape, inp.dtype.as_numpy_dtype, path, "input"),
                     output=_spec(out.shape, out.dtype.as_numpy_dtype, path, "output"), saved_model=loaded)
    model = _load_keras(path)
    inp = _single(list(model.inputs), path, "input")
    out = _single(list(model.outputs), path, "output")
    return Model(**common, input=_spec(inp.shape, inp.dtype, path, "input"),
                 output=_spec(out.shape, out.dtype, path, "output"), keras=model)


# ---- data sets ---------------------------------------------------------------------------


def _from_function(spec: str) -> tuple[np.ndarray, np.ndarray | None]:
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"data '{spec}': cannot import {func_name} from {module_name} ({exc})") from exc
    xs, ys = [], []
    for i, sample in enumerate(func()):
        if isinstance(sample, (tuple, list)) and len(sample) == 2:
            xs.append(np.asarray(sample[0]))
            ys.append(sample[1])
        else:
            xs.append(np.asarray(sample))
    if not xs:
        raise BadInput(f"data '{spec}': the function returned no samples")
    shapes = {x.shape for x in xs}
    if len(shapes) > 1:
        first = xs[0].shape
        bad = next(i for i, x in enumerate(xs) if x.shape != first)
        raise BadInput(f"data '{spec}': sample {bad} has shape {xs[bad].shape}, sample 0 has {first}")
    y = np.asarray(ys) if ys and len(ys) == len(xs) else None
    return np.stack(xs), y


def _npz_array(loaded, name: str, path: Path) -> np.ndarray:
    """One member of an .npz; numpy reads it only now, so a damaged or pickled member fails here."""
    try:
        return loaded[name]
    except Exception as exc:
        raise BadInput(f"{path}: array '{name}' is not readable ({exc})") from exc


def read_arrays(spec: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The raw arrays behind a data spec: a .npy, a .npz (x, optional y), or module:function."""
    path = Path(spec)
    if path.suffix in (".npy", ".npz"):
        if not path.exists():
            raise BadInput(f"{path}: no such file")
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise BadInput(f"{path}: not a readable NumPy file ({exc})") from exc
        if path.suffix == ".npy" and not isinstance(loaded, np.ndarray):
            loaded.close()
            raise BadInput(f"{path}: an .npz archive, not a single array; name it .npz (inputs as 'x', "
                           "optional labels as 'y')")
        if path.suffix == ".npy":
            return loaded, None
        if isinstance(loaded, np.ndarray):
            raise BadInput(f"{path}: a single array (.npy), not an .npz archive; name it .npy, or save "
                           "the inputs as 'x' (and optional labels as 'y') with numpy.savez")
        with loaded:
            if "x" not in loaded.files:
                raise BadInput(f"{path}: no array 'x' (found: {', '.join(loaded.files) or 'nothing'}); "
                               "an .npz holds inputs as 'x' and optional labels as 'y'")
            x = _npz_array(loaded, "x", path)
            return x, (_npz_array(loaded, "y", path) if "y" in loaded.files else None)
    if ":" in spec and not path.exists():
        return _from_function(spec)
    raise BadInput(f"{spec}: data must be a .npy, a .npz or package.module:function")


_REAL_KINDS = "biuf"  # numpy dtype kinds: bool, signed and unsigned integers, floats


def _first_non_finite(x: np.ndarray) -> int | None:
    """The index of the first sample holding NaN or infinity, if any."""
    if not np.issubdtype(x.dtype, np.floating) or x.size == 0:
        return None
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    return None if finite.all() else int(np.argmin(finite))


def check_dataset(x: np.ndarray, y: np.ndarray | None, spec: TensorSpec, source: str) -> Dataset:
    """Validate samples against the model input; returns them as (N, *shape) arrays. For a quantized
    integer input (a model that came quantized) float samples stay float (they are quantized with
    the input's scale when they are run); integer samples must fit an integer input's type."""
    if x.ndim == len(spec.shape) + 2 and x.shape[1] == 1:  # samples saved with their batch dimension
        x = x[:, 0]
    if spec.source_shape is not None and x.ndim >= 2 and x.shape[1:] == spec.source_shape \
            and spec.source_shape != spec.shape:  # the model's own channels-first layout: made channel-last
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    if x.ndim == 0 or x.shape[1:] != spec.shape:
        got = x.shape[1:] if x.ndim else x.shape
        if spec.source_shape is not None:
            raise BadInput(f"{source}: sample 0 has shape {got} but the model input is {spec.source_shape} in "
                           f"{spec.source_layout} (the model's own layout) or {spec.shape} channel-last "
                           f"(the converted model's) (array shape {x.shape})")
        raise BadInput(f"{source}: sample 0 has shape {got} but the model input is {spec.shape} "
                       f"(array shape {x.shape}; expected (samples, {', '.join(map(str, spec.shape))}))")
    if x.dtype.kind not in _REAL_KINDS:  # complex, timedelta, strings, records
        raise BadInput(f"{source}: inputs have dtype {x.dtype}; expected numbers ({spec.dtype})")
    bad = _first_non_finite(x)
    if bad is not None:
        raise BadInput(f"{source}: sample {bad} contains NaN or infinity")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = x.astype(spec.dtype, copy=False)
    bad = _first_non_finite(converted)
    if bad is not None:
        raise BadInput(f"{source}: sample {bad} has a value beyond the range of {spec.dtype}")
    if y is not None and y.ndim == 0:
        raise BadInput(f"{source}: the labels are a single value (shape ()); expected one label per input")
    if y is not None and len(y) != len(x):
        raise BadInput(f"{source}: {len(x)} inputs but {len(y)} labels")
    if y is not None and y.dtype.kind not in _REAL_KINDS:
        raise BadInput(f"{source}: labels have dtype {y.dtype}; expected class ids or numeric targets")
    target = np.dtype(spec.dtype)
    if np.issubdtype(target, np.integer):
        if spec.quantized and np.issubdtype(x.dtype, np.floating):
            return Dataset(x=x.astype(np.float32, copy=False), y=y, source=source)
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise BadInput(f"{source}: integer inputs range over [{x.min()}, {x.max()}], outside the model input's "
                           f"{target} ([{info.min}, {info.max}])")
    return Dataset(x=converted, y=y, source=source)


def load_dataset(spec: str, model_input: TensorSpec) -> Dataset:
    x, y = read_arrays(spec)
    if x.ndim and len(x) == 0:  # a 0-d array is refused for its shape, in check_dataset
        raise BadInput(f"{spec}: the data set is empty")
    return check_dataset(x, y, model_input, spec)


def random_dataset(model_input: TensorSpec, count: int = 100, seed: int = 0) -> Dataset:
    """Uniform [0, 1) inputs, for when the user gives no calibration data."""
    rng = np.random.default_rng(seed)
    dtype = np.float32 if np.issubdtype(np.dtype(model_input.dtype), np.integer) else model_input.dtype
    x = rng.random((count, *model_input.shape)).astype(dtype)  # an integer input quantizes them
    return Dataset(x=x, y=None, source=f"random uniform [0, 1) inputs (seed {seed})", synthetic=True)


def load_data(model: Model, data: str | None, val: str | None) -> tuple[Dataset, Dataset]:
    """The calibration and validation sets for `model`; without them, random inputs and a loud warning.
    A model that came quantized needs no calibration: its validation data (or random inputs) stand in."""
    if data is not None:
        calibration = load_dataset(data, model.input)
    elif model.quantized and val is not None:
        calibration = load_dataset(val, model.input)
    else:
        calibration = random_dataset(model.input)
        if not model.quantized:
            console.warn("no calibration data given (--data): calibrating on random uniform [0, 1) inputs. "
                         "Quantization ranges, and so accuracy, will be poor unless real inputs look like that.")
    if val is not None:
        validation = load_dataset(val, model.input) if calibration.source != val else calibration
    else:
        validation = calibration
        console.warn("no validation data given (--val): figures are measured on "
                     + ("random inputs" if calibration.synthetic else "the calibration inputs")
                     + ", without labels, so no accuracy can be claimed.")
    return calibration, validation
