"""Reading ONNX models and torch.export programs (.pt2) into edgeq's Model.

Only reading and checking happens here: the opset, every input and output in the model's order,
their shapes with a free batch fixed at 1. The convert stage (edgeq.convert.torch_convert) turns the
model into a float .tflite whose rank-3 and rank-4 inputs are channel-last, which is why such an
input's spec is the NHWC shape and its `source_shape` the model's own NCHW one
(docs/onnx-pytorch.md).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from edgeq import console
from edgeq.errors import BadInput
from edgeq.load.model import ONNX_MIN_OPSET, ONNX_TARGET_OPSET, TORCH_EXTRA, Model, TensorSpec, model_identity, named


def channels_last(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) -> (H, W, C) for one sample; (C, L) -> (L, C); other ranks unchanged."""
    return (*shape[1:], shape[0]) if len(shape) >= 2 else shape


def _torch_input_spec(dims: list, path: Path, what: str) -> TensorSpec:
    """The converted model's input for a channels-first model input `dims` (batch first; a free
    batch is fixed at 1, with a note). Rank 3 and 4 inputs (NCL, NCHW) are made channel-last."""
    if not dims:
        raise BadInput(f"{path}: the {what} is a scalar; edgeq handles a batch of samples")
    if not isinstance(dims[0], int) or dims[0] != 1:
        console.info(f"  {'':9} {what}: batch dimension {dims[0]!r} fixed to 1")
    own = dims[1:]
    if any(not isinstance(d, int) or d <= 0 for d in own):
        raise BadInput(f"{path}: the {what} shape {tuple(dims)} has unknown dimensions besides the batch; "
                       "microcontroller runtimes need a fixed shape: export the model with fixed sizes")
    own = tuple(own)
    if len(own) in (2, 3):
        names = "NCL" if len(own) == 2 else "NCHW"
        return TensorSpec(channels_last(own), "float32", source_shape=own, source_layout=names)
    return TensorSpec(own, "float32")


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BadInput(f"reading this model needs {module}, which is not installed: {TORCH_EXTRA}") from exc


def load_onnx(path: Path, common: dict) -> Model:
    onnx = _require("onnx")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:
        raise BadInput(f"{path}: not an ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
                       ) from exc
    if not proto.graph.node:
        raise BadInput(f"{path}: not an ONNX model (no graph nodes)")
    opsets = {o.domain: o.version for o in proto.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    newest = onnx.defs.onnx_opset_version()
    if opset is None or not ONNX_MIN_OPSET <= opset <= newest:
        raise BadInput(f"{path}: ONNX opset {opset} is outside what edgeq's converter reads: opsets "
                       f"{ONNX_MIN_OPSET} to {newest} (above {ONNX_TARGET_OPSET} they are converted down to it); "
                       "export the model again with opset_version in that range")
    others = sorted(d for d in opsets if d not in ("", "ai.onnx"))
    if others:
        raise BadInput(f"{path}: the model uses operator domains {', '.join(others)}; edgeq's converter reads "
                       "only the standard ONNX operators")
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    outputs = list(proto.graph.output)
    if not inputs or not outputs:
        raise BadInput(f"{path}: the ONNX graph has {len(inputs)} inputs and {len(outputs)} outputs; edgeq needs "
                       "at least one of each")
    for inp in inputs:
        if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise BadInput(f"{path}: the input '{inp.name}' is "
                           f"{onnx.TensorProto.DataType.Name(inp.type.tensor_type.elem_type)}; edgeq takes a float32 "
                           "ONNX model and quantizes it")

    def dims(value):
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in value.type.tensor_type.shape.dim]

    input_specs = tuple(named(_torch_input_spec(dims(i), path, f"input '{i.name}'"), i.name) for i in inputs)
    out_dims = [dims(o) for o in outputs]
    if any(not isinstance(d, int) for o in out_dims for d in o[1:]):  # infer them with the batch fixed
        for inp in inputs:
            inp.type.tensor_type.shape.dim[0].dim_value = 1
        inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(proto).graph.output}
        out_dims = [dims(inferred[o.name]) for o in outputs]
    output_specs = tuple(named(_torch_output_spec(d, path, f"output '{o.name}'"), o.name)
                         for d, o in zip(out_dims, outputs))
    return Model(**common, inputs=input_specs, outputs=output_specs, opset=opset)


def _torch_output_spec(dims: list, path: Path, what: str) -> TensorSpec:
    own = dims[1:]
    if any(not isinstance(d, int) or d <= 0 for d in own):
        raise BadInput(f"{path}: the {what} shape {tuple(dims)} has unknown dimensions besides the batch")
    return TensorSpec(tuple(own), "float32")


def load_pt2(path: Path, common: dict) -> Model:
    torch = _require("torch")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise BadInput(f"{path}: not a torch.export program ({type(exc).__name__}: {exc}); save one with "
                       "torch.export.save(torch.export.export(model, (example,)), 'model.pt2')") from exc
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    inputs = [placeholders[s.arg.name] for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    results = next(n for n in program.graph.nodes if n.op == "output").args[0]
    outputs = list(results) if isinstance(results, (tuple, list)) else [results]
    if not inputs or not outputs:
        raise BadInput(f"{path}: the program has {len(inputs)} inputs and {len(outputs)} outputs; edgeq needs at "
                       "least one of each")

    def dims(node):
        value = node.meta.get("val")
        if value is None or not hasattr(value, "shape"):
            raise BadInput(f"{path}: the program records no shape for '{node.name}'")
        if value.dtype != torch.float32:
            raise BadInput(f"{path}: '{node.name}' is {value.dtype}; edgeq takes a float32 program and quantizes it")
        return [int(d) if isinstance(d, int) or str(d).isdigit() else str(d) for d in value.shape]

    input_specs = tuple(named(_torch_input_spec(dims(n), path, f"input '{n.name}'"), n.name) for n in inputs)
    output_specs = []
    for k, node in enumerate(outputs):
        out_dims = dims(node)
        out_dims[0] = 1
        output_specs.append(named(_torch_output_spec(out_dims, path, f"output {k}"), f"output_{k}"))
    return Model(**common, inputs=input_specs, outputs=tuple(output_specs))


def load_torch(module, example, directory: str | Path | None = None, name: str | None = None) -> Model:
    """A PyTorch nn.Module and an example input (NCHW, batch 1) as an edgeq Model: exported with
    torch.export and saved as `<name>.pt2` in `directory` (a temporary one by default), then read
    like any .pt2, so that the converter's worker process can load it from the file."""
    torch = _require("torch")
    import tempfile

    example = example if isinstance(example, tuple) else (example,)
    try:
        program = torch.export.export(module.eval(), example)
    except Exception as exc:
        raise BadInput(f"torch.export could not export {type(module).__name__} ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="edgeq-torch-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or type(module).__name__.lower()}.pt2"
    torch.export.save(program, str(path))
    return load_pt2(path, model_identity(path))
