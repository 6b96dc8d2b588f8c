"""The converted model's inputs and outputs in the order of the source model's signature.

The TensorFlow Lite converter orders a SavedModel's inputs by name and its outputs as it likes (a
Keras model's inputs `image, extra` come out as `extra, image`); its signature def still names each.
edgeq exports the signature under the model's own input and output names, then puts the subgraph's
inputs and outputs back in the model's order, so the firmware, the data files and the report all
see them in the order the user wrote the model.
"""

from __future__ import annotations

import flatbuffers
from ai_edge_litert import schema_py_generated as schema

from edgeq.errors import ToolFailed
from edgeq.graph import read_graph


def in_signature_order(tflite: bytes, inputs: list[str], outputs: list[str]) -> bytes:
    """`tflite` with its first subgraph's inputs and outputs in the order of `inputs` and `outputs`
    (names in its first signature); the same bytes when they already are."""
    graph = read_graph(tflite)
    by_name = {name: index for index, name in graph.signature.items()}
    missing = [n for n in (*inputs, *outputs) if n not in by_name]
    if missing:
        raise ToolFailed(f"the converted model's signature has no tensor named '{missing[0]}' (it has "
                         f"{', '.join(sorted(by_name)) or 'none'})")
    wanted_in, wanted_out = [by_name[n] for n in inputs], [by_name[n] for n in outputs]
    if list(graph.inputs) == wanted_in and list(graph.outputs) == wanted_out:
        return tflite
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    subgraph = model.subgraphs[0]
    subgraph.inputs, subgraph.outputs = wanted_in, wanted_out
    for sig in model.signatureDefs or []:
        if sig.subgraphIndex == 0:
            rank_in, rank_out = {n: i for i, n in enumerate(inputs)}, {n: i for i, n in enumerate(outputs)}
            sig.inputs = sorted(sig.inputs or [], key=lambda e: rank_in.get(_text(e.name), len(inputs)))
            sig.outputs = sorted(sig.outputs or [], key=lambda e: rank_out.get(_text(e.name), len(outputs)))
    builder = flatbuffers.Builder(max(1024, len(tflite) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def with_signature_names(tflite: bytes, inputs: list[str], outputs: list[str]) -> bytes:
    """`tflite` whose first signature names its subgraph's inputs and outputs, in subgraph order, as
    `inputs` and `outputs` say (litert-torch names them args_0, output_0: the source model's names
    are the ones its data files and the report use)."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    subgraph = model.subgraphs[0]
    if (len(subgraph.inputs), len(subgraph.outputs)) != (len(inputs), len(outputs)):
        raise ToolFailed(f"the converted model has {len(subgraph.inputs)} inputs and {len(subgraph.outputs)} "
                         f"outputs; the source model has {len(inputs)} and {len(outputs)}")

    def entries(indices, names):
        out = []
        for index, name in zip(indices, names):
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = name.encode(), int(index)
            out.append(entry)
        return out

    signature = (model.signatureDefs or [None])[0] or schema.SignatureDefT()
    signature.signatureKey = signature.signatureKey or b"serving_default"
    signature.subgraphIndex = 0
    signature.inputs, signature.outputs = entries(subgraph.inputs, inputs), entries(subgraph.outputs, outputs)
    model.signatureDefs = [signature] + list(model.signatureDefs or [])[1:]
    builder = flatbuffers.Builder(max(1024, len(tflite) + 1024))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _text(name) -> str:
    return name.decode(errors="replace") if isinstance(name, bytes) else (name or "")
