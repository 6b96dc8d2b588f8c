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
class Samples:
    """A data set's inputs: one array per model input, in the model's input order, each of shape
    (samples, *that input's shape). A model with one input has one array."""

    arrays: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def __getitem__(self, key):
        """A slice of the samples (Samples), or one sample: a tuple with one array per input."""
        if isinstance(key, slice):
            return Samples(tuple(a[key] for a in self.arrays))
        return tuple(a[key] for a in self.arrays)

    @property
    def inputs(self) -> int:
        return len(self.arrays)

    @property
    def single(self) -> np.ndarray:
        """The one input's array, for what handles models with one input only."""
        if len(self.arrays) != 1:
            raise BadInput(f"this step handles models with one input; the data has {len(self.arrays)}")
        return self.arrays[0]

    def batch(self, i: int) -> list[np.ndarray]:
        """Sample `i` as the interpreters take it: one array per input, with a batch dimension of 1."""
        return [a[i][None, ...] for a in self.arrays]

    def sha256(self) -> str:
        return arrays_sha256(*self.arrays)


@dataclass(frozen=True)
class Dataset:
    x: Samples  # an ndarray is taken as the samples of a model with one input
    y: np.ndarray | None  # class ids or targets of the output `label_output`, or None
    source: str
    synthetic: bool = False  # random inputs: no accuracy can be claimed
    warnings: tuple[str, ...] = ()  # what the user should know of how the set was chosen
    label_output: int = 0  # the output (by its index in the model's outputs) that `y` labels

    def __post_init__(self) -> None:
        if isinstance(self.x, np.ndarray):
            object.__setattr__(self, "x", Samples((self.x,)))

    def __len__(self) -> int:
        return len(self.x)

    @property
    def has_class_labels(self) -> bool:
        return self.y is not None and self.y.ndim == 1 and np.issubdtype(self.y.dtype, np.integer)


@dataclass(frozen=True)
class Arrays:
    """The arrays behind a data spec before they are checked against a model: inputs under "x", or one
    per input (under its name, or x0, x1, ...); labels under "y", or one per output as "y_<name>"."""

    inputs: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    def sha256(self) -> str:
        keys = sorted(self.inputs) + sorted(self.labels)
        return arrays_sha256(*(self.inputs[k] for k in sorted(self.inputs)),
                             *(self.labels[k] for k in sorted(self.labels)), np.array(keys))

    @property
    def first(self) -> np.ndarray:
        """The inputs' first array in key order: "x" for a model with one input."""
        return self.inputs["x"] if "x" in self.inputs else self.inputs[sorted(self.inputs)[0]]


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


def _stack(values: list, what: str, spec: str) -> np.ndarray:
    shapes = [np.shape(v) for v in values]
    if len(set(shapes)) > 1:
        bad = next(i for i, s in enumerate(shapes) if s != shapes[0])
        raise BadInput(f"data '{spec}': {what} of sample {bad} has shape {shapes[bad]}, sample 0 has {shapes[0]}")
    return np.stack([np.asarray(v) for v in values])


def _from_function(spec: str) -> Arrays:
    """Samples from `package.module:function`: each an input, or (input, label); an input is an array,
    or for a model with several inputs a dict from input name to array."""
    module_name, _, func_name = spec.partition(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise BadInput(f"data '{spec}': cannot import {func_name} from {module_name} ({exc})") from exc
    xs, ys = [], []
    for sample in func():
        if isinstance(sample, (tuple, list)) and len(sample) == 2:
            xs.append(sample[0])
            ys.append(sample[1])
        else:
            xs.append(sample)
    if not xs:
        raise BadInput(f"data '{spec}': the function returned no samples")
    if all(isinstance(x, dict) for x in xs):
        keys = list(xs[0])
        if any(list(x) != keys for x in xs):
            raise BadInput(f"data '{spec}': every sample must name the same inputs ({', '.join(keys)})")
        inputs = {k: _stack([x[k] for x in xs], f"input '{k}'", spec) for k in keys}
    else:
        inputs = {"x": _stack(xs, "the input", spec)}
    labels = {"y": np.asarray(ys)} if ys and len(ys) == len(xs) else {}
    return Arrays(inputs, labels)


def _npz_array(loaded, name: str, path: Path) -> np.ndarray:
    """One member of an .npz; numpy reads it only now, so a damaged or pickled member fails here."""
    try:
        return loaded[name]
    except Exception as exc:
        raise BadInput(f"{path}: array '{name}' is not readable ({exc})") from exc


def read_arrays(spec: str) -> Arrays:
    """The raw arrays behind a data spec: a .npy (inputs), a .npz (inputs as x, or one array per input
    by its name or as x0, x1, ...; labels as y, or y_<output name>), or module:function."""
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
            return Arrays({"x": loaded}, {})
        if isinstance(loaded, np.ndarray):
            raise BadInput(f"{path}: a single array (.npy), not an .npz archive; name it .npy, or save "
                           "the inputs as 'x' (and optional labels as 'y') with numpy.savez")
        with loaded:
            label_keys = [k for k in loaded.files if k == "y" or k.startswith("y_")]
            input_keys = [k for k in loaded.files if k not in label_keys]
            if not input_keys:
                raise BadInput(f"{path}: no array 'x' (found: {', '.join(loaded.files) or 'nothing'}); "
                               "an .npz holds inputs as 'x' (or one array per input, named by the input or x0, "
                               "x1, ...) and optional labels as 'y' (or y_<output name>)")
            return Arrays({k: _npz_array(loaded, k, path) for k in input_keys},
                          {k: _npz_array(loaded, k, path) for k in label_keys})
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


def _check_input(x: np.ndarray, spec: TensorSpec, source: str) -> np.ndarray:
    """One input's samples checked against its spec: (N, *shape), numbers, finite, in range."""
    if x.ndim == len(spec.shape) + 2 and x.shape[1] == 1:  # samples saved with their batch dimension
        x = x[:, 0]
    if spec.source_shape is not None and x.ndim >= 2 and x.shape[1:] == spec.source_shape \
            and spec.source_shape != spec.shape:  # the model's own channels-first layout: made channel-last
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    what = f"the model input '{spec.name}'" if spec.name else "the model input"
    if x.ndim == 0 or x.shape[1:] != spec.shape:
        got = x.shape[1:] if x.ndim else x.shape
        if spec.source_shape is not None:
            raise BadInput(f"{source}: sample 0 has shape {got} but {what} is {spec.source_shape} in "
                           f"{spec.source_layout} (the model's own layout) or {spec.shape} channel-last "
                           f"(the converted model's) (array shape {x.shape})")
        raise BadInput(f"{source}: sample 0 has shape {got} but {what} is {spec.shape} "
                       f"(array shape {x.shape}; expected (samples, {', '.join(map(str, spec.shape))}))")
    if x.dtype.kind not in _REAL_KINDS:  # complex, timedelta, strings, records
        raise BadInput(f"{source}: inputs have dtype {x.dtype}; expected numbers ({spec.dtype})")
    bad = _first_non_finite(x)
    if bad is not None:
        raise BadInput(f"{source}: sample {bad} contains NaN or infinity")
    target = np.dtype(spec.dtype)
    if np.issubdtype(target, np.integer):
        if spec.quantized and np.issubdtype(x.dtype, np.floating):
            return x.astype(np.float32, copy=False)  # quantized with the input's scale when run
        info = np.iinfo(target)
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise BadInput(f"{source}: integer inputs range over [{x.min()}, {x.max()}], outside the model input's "
                           f"{target} ([{info.min}, {info.max}])")
    with np.errstate(over="ignore", invalid="ignore"):
        converted = x.astype(spec.dtype, copy=False)
    bad = _first_non_finite(converted)
    if bad is not None:
        raise BadInput(f"{source}: sample {bad} has a value beyond the range of {spec.dtype}")
    return converted


def _by_input(given: dict[str, np.ndarray], specs: tuple[TensorSpec, ...], source: str) -> list[np.ndarray]:
    """The given arrays in the model's input order: "x" (or the input's name) for one input; one per
    input by its name, or x0, x1, ... for several."""
    if len(specs) == 1:
        for key in ("x", specs[0].name, "x0"):
            if key and key in given and len(given) == 1:
                return [given[key]]
        raise BadInput(f"{source}: no array 'x' (found: {', '.join(given) or 'nothing'}); an .npz holds the "
                       "inputs as 'x' and optional labels as 'y'")
    names = [s.name for s in specs]
    for keys in (names, [f"x{i}" for i in range(len(specs))]):
        if all(k in given for k in keys):
            extra = sorted(set(given) - set(keys))
            if extra:
                raise BadInput(f"{source}: array '{extra[0]}' is no input of the model (its inputs: "
                               f"{', '.join(names)})")
            return [given[k] for k in keys]
    raise BadInput(f"{source}: the model has {len(specs)} inputs ({', '.join(names)}): give one array per input, "
                   f"named by the input or x0..x{len(specs) - 1} (found: {', '.join(given) or 'nothing'})")


def _labels(labels: dict[str, np.ndarray], outputs: tuple[TensorSpec, ...], label_output: str | None,
            source: str) -> tuple[np.ndarray | None, int]:
    """The labels top-1 accuracy is measured on, and the index of the output they label: `label_output`
    names it; else the only output, or the only one whose labels (y_<name>) are class ids."""
    names = [o.name for o in outputs]
    if label_output is not None and outputs and label_output not in names:
        raise BadInput(f"--label-output {label_output}: the model has no such output (its outputs: "
                       f"{', '.join(names)})")
    if not labels:
        return None, names.index(label_output) if label_output is not None and outputs else 0
    if "y" in labels:
        if label_output is not None and outputs:
            return labels["y"], names.index(label_output)
        if len(outputs) > 1:
            raise BadInput(f"{source}: 'y' labels one output, but the model has {len(outputs)} "
                           f"({', '.join(names)}): name it with --label-output, or save the labels as "
                           f"y_<output name>")
        return labels["y"], 0
    per_output = {k[2:]: v for k, v in labels.items()}
    unknown = [k for k in per_output if k not in names]
    if unknown:
        raise BadInput(f"{source}: labels 'y_{unknown[0]}' name no output of the model (its outputs: "
                       f"{', '.join(names)})")
    if label_output is not None:
        return per_output.get(label_output), names.index(label_output)
    classes = [k for k, v in per_output.items() if v.ndim == 1 and np.issubdtype(v.dtype, np.integer)]
    if len(classes) > 1:
        raise BadInput(f"{source}: outputs {', '.join(classes)} all have class labels: name the one top-1 "
                       "accuracy is measured on with --label-output")
    chosen = classes[0] if classes else next(iter(per_output))
    return per_output[chosen], names.index(chosen)


def check_dataset(x, y, specs, source: str, outputs: tuple[TensorSpec, ...] = (),
                  label_output: str | None = None) -> Dataset:
    """Validate samples against the model's inputs; returns them as one (N, *shape) array per input.
    `x` is an array (a model with one input) or a dict of arrays (Arrays.inputs); `y` an array, a dict
    (Arrays.labels) or None; `specs` the model's input TensorSpec, or all of them, in order. For a
    quantized integer input (a model that came quantized) float samples stay float (they are quantized
    with the input's scale when they are run); integer samples must fit an integer input's type."""
    specs = (specs,) if isinstance(specs, TensorSpec) else tuple(specs)
    given = x if isinstance(x, dict) else {"x": x}
    arrays = [_check_input(np.asarray(a) if not isinstance(a, np.ndarray) else a, s, source)
              for a, s in zip(_by_input(given, specs, source), specs)]
    counts = {len(a) for a in arrays}
    if len(counts) > 1:
        raise BadInput(f"{source}: the inputs hold different numbers of samples ("
                       + ", ".join(f"{s.name or i}: {len(a)}" for i, (s, a) in enumerate(zip(specs, arrays))) + ")")
    y, label_index = _labels(y if isinstance(y, dict) else ({} if y is None else {"y": y}), tuple(outputs),
                             label_output, source)
    if y is not None and y.ndim == 0:
        raise BadInput(f"{source}: the labels are a single value (shape ()); expected one label per input")
    if y is not None and len(y) != len(arrays[0]):
        raise BadInput(f"{source}: {len(arrays[0])} inputs but {len(y)} labels")
    if y is not None and y.dtype.kind not in _REAL_KINDS:
        raise BadInput(f"{source}: labels have dtype {y.dtype}; expected class ids or numeric targets")
    return Dataset(x=Samples(tuple(arrays)), y=y, source=source, label_output=label_index)


def load_dataset(spec: str, inputs, outputs: tuple[TensorSpec, ...] = (), label_output: str | None = None
                 ) -> Dataset:
    """The data set behind `spec`, checked against the model's inputs (a TensorSpec, or all of them)."""
    arrays = read_arrays(spec)
    if any(a.ndim and len(a) == 0 for a in arrays.inputs.values()):  # a 0-d array is refused for its shape
        raise BadInput(f"{spec}: the data set is empty")
    return check_dataset(arrays.inputs, arrays.labels, inputs, spec, outputs, label_output)


def random_dataset(inputs, count: int = 100, seed: int = 0) -> Dataset:
    """Uniform [0, 1) inputs, for when the user gives no calibration data."""
    rng = np.random.default_rng(seed)
    specs = (inputs,) if isinstance(inputs, TensorSpec) else tuple(inputs)
    arrays = []
    for spec in specs:
        dtype = np.float32 if np.issubdtype(np.dtype(spec.dtype), np.integer) else spec.dtype
        arrays.append(rng.random((count, *spec.shape)).astype(dtype))  # an integer input quantizes them
    return Dataset(x=Samples(tuple(arrays)), y=None, source=f"random uniform [0, 1) inputs (seed {seed})",
                   synthetic=True)


def load_data(model: Model, data: str | None, val: str | None, label_output: str | None = None
              ) -> tuple[Dataset, Dataset]:
    """The calibration and validation sets for `model`; without them, random inputs and a loud warning
    (in each set's `warnings`). A model that came quantized needs no calibration: its validation data
    (or random inputs) stand in. `label_output` names the output the validation labels are for."""
    if data is not None:
        calibration = load_dataset(data, model.inputs, model.outputs, label_output)
    elif model.quantized and val is not None:
        calibration = load_dataset(val, model.inputs, model.outputs, label_output)
    else:
        calibration = random_dataset(model.inputs)
        if not model.quantized:
            calibration = dataclasses.replace(calibration, warnings=(
                "no calibration data given (--data): calibrating on random uniform [0, 1) inputs. Quantization "
                "ranges, and so accuracy, will be poor unless real inputs look like that.",))
    if val is not None:
        validation = (load_dataset(val, model.inputs, model.outputs, label_output) if calibration.source != val
                      else calibration)
    else:
        validation = dataclasses.replace(calibration, warnings=(
            "no validation data given (--val): figures are measured on "
            + ("random inputs" if calibration.synthetic else "the calibration inputs")
            + ", without labels, so no accuracy can be claimed.",))
    return calibration, validation
