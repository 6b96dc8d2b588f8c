"""The calibration and validation sets: read from .npy, .npz or a Python function, and checked
against the model's input once, so that later stages can trust them (every sample has the model's
input shape, a numeric dtype and finite values)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeq.errors import BadInput
from edgeq.load.model import Model, TensorSpec


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (samples, *input shape)
    y: np.ndarray | None  # class ids or targets, or None
    source: str
    synthetic: bool = False  # random inputs: no accuracy can be claimed
    warnings: tuple[str, ...] = ()  # what the user should know of how the set was chosen

    def __len__(self) -> int:
        return len(self.x)

    @property
    def has_class_labels(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)


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
    """The calibration and validation sets for `model`; without them, random inputs and a loud warning
    (in each set's `warnings`). A model that came quantized needs no calibration: its validation data
    (or random inputs) stand in."""
    if data is not None:
        calibration = load_dataset(data, model.input)
    elif model.quantized and val is not None:
        calibration = load_dataset(val, model.input)
    else:
        calibration = random_dataset(model.input)
        if not model.quantized:
            calibration = dataclasses.replace(calibration, warnings=(
                "no calibration data given (--data): calibrating on random uniform [0, 1) inputs. Quantization "
                "ranges, and so accuracy, will be poor unless real inputs look like that.",))
    if val is not None:
        validation = load_dataset(val, model.input) if calibration.source != val else calibration
    else:
        validation = dataclasses.replace(calibration, warnings=(
            "no validation data given (--val): figures are measured on "
            + ("random inputs" if calibration.synthetic else "the calibration inputs")
            + ", without labels, so no accuracy can be claimed.",))
    return calibration, validation
