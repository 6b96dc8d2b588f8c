"""ONNX and PyTorch models to a float .tflite, and how faithful that conversion is.

The route (docs/onnx-pytorch.md): an ONNX model becomes a PyTorch fx.GraphModule (onnx2torch,
after onnx.version_converter takes an opset above 17 down to 17); a .pt2 is loaded with
torch.export.load. Either goes through litert-torch, wrapped so that its input is channel-last
(NHWC, what TFLite's kernels and edgeq-c are fast in); the float .tflite that comes out is
quantized by the converter's calibrator like any float .tflite (edgeq.convert.converter).

Everything here runs in edgeq's worker process (edgeq.isolate): torch, onnxruntime and the
converter are native code.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np

from edgeq.convert.signature import with_signature_names
from edgeq.errors import BadInput, ToolFailed
from edgeq.load import ONNX_TARGET_OPSET, TORCH_EXTRA, Model
from edgeq.quant.metrics import sqnr_db

FIDELITY_MIN_DB = 40.0  # below this the converted float model is not the model the user gave


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise BadInput(f"converting this model needs {module}, which is not installed: {TORCH_EXTRA}") from exc


def _onnx2torch():
    """onnx2torch, which imports torchvision for its NMS and RoiAlign converters only. Where
    torchvision's native library cannot load (a CUDA torchvision wheel beside a CPU torch), those
    two converters are given stand-ins that refuse, and every other op converts as usual."""
    _require("torch")
    try:
        import torchvision  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or RuntimeError from its operator registrations
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        vision, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        vision.__path__, vision.ops = [], ops

        def unavailable(*args, **kwargs):
            raise BadInput("this model's NonMaxSuppression / RoiAlign needs torchvision, which does not load here")

        ops.nms = ops.box_convert = ops.roi_align = unavailable
        sys.modules.update({"torchvision": vision, "torchvision.ops": ops})
    return _require("onnx2torch")


def onnx_proto(model: Model):
    """The ONNX model at the opset onnx2torch reads, every op checked to have a converter."""
    onnx = _require("onnx")
    proto = onnx.load(str(model.path))
    if model.opset > ONNX_TARGET_OPSET:
        from onnx import version_converter

        try:
            proto = version_converter.convert_version(proto, ONNX_TARGET_OPSET)
        except Exception as exc:
            raise BadInput(f"{model.path}: ONNX opset {model.opset} could not be converted down to opset "
                           f"{ONNX_TARGET_OPSET}, the one edgeq's converter reads ({str(exc).splitlines()[0]}); "
                           f"export the model with opset_version={ONNX_TARGET_OPSET}") from exc
    registry = _onnx2torch().node_converters.registry
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    missing = []
    for node in proto.graph.node:
        try:
            registry.get_converter(operation_type=node.op_type, version=opset, domain=node.domain or "")
        except NotImplementedError:
            if node.op_type not in missing:
                missing.append(node.op_type)
    if missing:
        raise BadInput(f"{model.path}: the converter cannot handle the ONNX op{'s' if len(missing) > 1 else ''} "
                       f"{', '.join(missing)} (opset {opset}): onnx2torch has no conversion for "
                       f"{'them' if len(missing) > 1 else 'it'}; replace the layer or keep it out of the export")
    return proto


def _exported(program):
    """A torch.export program's module, wrapped so that eval() (which litert-torch and the layout
    wrapper call) leaves it alone: an exported module is already in inference form and refuses train()."""
    from torch import nn

    class Exported(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def train(self, mode: bool = True):
            self.training = mode
            return self

        def forward(self, *args):
            return self.inner(*args)

    return Exported(program.module())


def torch_module(model: Model):
    """The model as a PyTorch module in its own (channels-first) layout, in eval mode."""
    torch = _require("torch")
    if model.format == "pt2":
        return _exported(torch.export.load(str(model.path)))
    proto = onnx_proto(model)
    try:
        module = _onnx2torch().convert(proto)
    except NotImplementedError as exc:
        raise BadInput(f"{model.path}: the converter cannot handle this model: {exc}") from exc
    return module.eval()


_ATEN = re.compile(r"(aten\.[\w.]+|torch\.ops\.[\w.]+)")


def float_tflite(model: Model) -> bytes:
    """The float .tflite of an ONNX or .pt2 model: channel-last rank-3 and rank-4 inputs, batch 1,
    inputs and outputs named and ordered as the model has them."""
    torch = _require("torch")
    litert_torch = _require("litert_torch")
    module = torch_module(model)
    channels_first = [k for k, spec in enumerate(model.inputs) if spec.source_shape is not None]
    if channels_first:
        module = litert_torch.to_channel_last_io(module, args=channels_first)
    samples = tuple(torch.zeros((1, *spec.shape), dtype=torch.float32) for spec in model.inputs)
    try:
        with torch.no_grad():
            converted = litert_torch.convert(module.eval(), samples)
    except Exception as exc:
        text = str(exc)
        op = _ATEN.search(text)
        if op and re.search(r"lowering|not supported|no .*conversion|unsupported", text, re.IGNORECASE):
            raise BadInput(f"{model.path}: litert-torch cannot convert the op {op.group(1)}; replace the layer "
                           "or keep it out of the exported model (details in the log)") from exc
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ToolFailed(f"{model.path}: litert-torch failed to convert the model: {first} (the full message "
                         "is in the log)") from exc
    from edgeq.convert.layout import fold_flatten_transposes

    tflite = fold_flatten_transposes(bytes(converted.model_content()))[0]
    return with_signature_names(tflite, [s.name for s in model.inputs], [s.name for s in model.outputs])


# ---- fidelity ----------------------------------------------------------------------------------


def _run_tflite(tflite: bytes, x: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """Every output of every sample, in the model's order (the subgraph's)."""
    from ai_edge_litert.interpreter import Interpreter

    from edgeq.graph import read_graph

    graph = read_graph(tflite)
    interpreter = Interpreter(model_content=tflite)
    interpreter.allocate_tensors()
    inputs = {d["index"]: d for d in interpreter.get_input_details()}
    outputs = {d["index"]: d for d in interpreter.get_output_details()}
    results: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    for i in range(len(x[0])):
        for index, a in zip(graph.inputs, x):
            interpreter.set_tensor(inputs[index]["index"], a[i][None].astype(np.float32))
        interpreter.invoke()
        for k, index in enumerate(graph.outputs):
            results[k].append(interpreter.get_tensor(outputs[index]["index"])[0].copy())
    return [np.stack(r) for r in results]


def _channels_first(model: Model, x: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    return tuple(np.ascontiguousarray(np.moveaxis(a, -1, 1)) if spec.source_shape is not None else a
                 for spec, a in zip(model.inputs, x))


def _onnxruntime(model: Model, x: tuple[np.ndarray, ...], proto=None, names: list[str] | None = None
                 ) -> list[np.ndarray]:
    """ONNX Runtime's outputs (the model's, or the tensors `names` of `proto`), one sample at a time."""
    ort = _require("onnxruntime")
    content = proto.SerializeToString() if proto is not None else str(model.path)
    session = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    feeds = [i.name for i in session.get_inputs()]
    runs = [session.run(names, {f: a[i][None].astype(np.float32) for f, a in zip(feeds, x)}) for i in range(len(x[0]))]
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def _torch_outputs(model: Model, x: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """torch's outputs of the .pt2 program, one sample at a time."""
    torch = _require("torch")
    module = torch_module(model)
    runs = []
    with torch.no_grad():
        for i in range(len(x[0])):
            result = module(*(torch.from_numpy(a[i][None].astype(np.float32)) for a in x))
            runs.append([t.numpy() for t in (result if isinstance(result, (tuple, list)) else (result,))])
    return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]


def _first_divergent_onnx_node(model: Model, x: tuple[np.ndarray, ...]) -> str | None:
    """The first ONNX node whose output, in the PyTorch graph onnx2torch made, differs from ONNX
    Runtime's by more than FIDELITY_MIN_DB; None when every node agrees (the loss is then in
    litert-torch's step)."""
    import torch
    from torch import fx

    onnx = _require("onnx")
    proto = onnx_proto(model)
    names = [out for node in proto.graph.node for out in node.output if out]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in known:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))
    reference = dict(zip(names, _onnxruntime(model, x, exposed, names)))
    module = torch_module(model)
    by_node = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n):
            result = super().run_node(n)
            if n.op == "call_module" and isinstance(result, torch.Tensor):
                by_node[n.target] = result.detach().numpy()
            return result

    with torch.no_grad():
        Recorder(module).run(*(torch.from_numpy(a.astype(np.float32)) for a in x))
    def key(name: str) -> str:  # onnx2torch names a node's module after it, with '.' made '/'
        return name.replace(".", "/").strip("/")

    recorded = {key(k): v for k, v in by_node.items()}
    for node in proto.graph.node:
        got = recorded.get(key(node.name)) if node.name else None
        out = node.output[0] if node.output else None
        if got is None or out not in reference or got.shape != reference[out].shape:
            continue
        if sqnr_db(reference[out], got) < FIDELITY_MIN_DB:
            return f"{node.op_type} '{node.name or out}'"
    return None


def fidelity(model: Model, tflite: bytes, x: tuple[np.ndarray, ...]) -> dict:
    """The converted float model against the model's own runtime (ONNX Runtime, or torch for a
    .pt2) on `x` (one array per input, channel-last, as the converted model takes them): output SQNR
    (the worst output's) and where it diverges."""
    own = _channels_first(model, x)
    converted = _run_tflite(tflite, x)
    if model.format == "onnx":
        reference_name = "onnxruntime " + _require("onnxruntime").__version__
        references = _onnxruntime(model, own)
    else:
        reference_name = "torch " + _require("torch").__version__
        references = _torch_outputs(model, own)
    references = [r.reshape(c.shape) for r, c in zip(references, converted)]
    sqnr = min(sqnr_db(r, c) for r, c in zip(references, converted))
    single = converted[0] if len(converted) == 1 else None
    record = {"reference": reference_name, "converted": "litert-torch " + _require("litert_torch").__version__,
              "samples": len(x[0]), "sqnr_db": None if not np.isfinite(sqnr) else round(sqnr, 3),
              "identical": bool(sqnr == float("inf")),
              "max_abs_error": max((float(np.max(np.abs(r - c))) if c.size else 0.0)
                                   for r, c in zip(references, converted)),
              "top1_agreement": (float(np.mean(references[0].argmax(-1) == single.argmax(-1)))
                                 if single is not None and single.ndim == 2 and single.shape[1] > 1 else None),
              "threshold_db": FIDELITY_MIN_DB, "first_divergent_layer": None, "note": None}
    if sqnr < FIDELITY_MIN_DB:
        found = _first_divergent_onnx_node(model, tuple(a[:8] for a in own)) if model.format == "onnx" else None
        record["first_divergent_layer"] = found
        record["note"] = (f"the PyTorch graph made from the ONNX model first differs from ONNX Runtime at {found}"
                          if found else
                          "the PyTorch graph matches ONNX Runtime at every node: the loss is in litert-torch's "
                          "conversion" if model.format == "onnx" else
                          "litert-torch's float model differs from torch's; edgeq cannot map torch's layers to "
                          "the converted tensors, so no layer is named")
    return record
