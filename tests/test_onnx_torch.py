"""ONNX and PyTorch models in (docs/onnx-pytorch.md): a PyTorch CNN trained here on scikit-learn's
digits, exported to ONNX and to a torch.export .pt2, deploys to the emulated board as int8 with its
data in NCHW: accuracy within 1 pp of the float model, bit-exact on the board, the conversion
faithful to ONNX Runtime / torch. Bad input is refused with the reason named."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

_MISSING = [m for m in ("torch", "onnx", "onnxruntime", "onnx2torch", "litert_torch") if importlib.util.find_spec(m) is None]
if _MISSING:  # found, not imported: onnx2torch's import goes through edgeq (torchvision may not load)
    pytest.skip(f"{', '.join(_MISSING)} not installed: the torch extra (pip install -e '.[torch]', which "
                "`make test` installs) brings them", allow_module_level=True)

import torch
from torch import nn

from edgeq.errors import BadInput
from edgeq.load import load_dataset, load_model, load_torch


def edgeq(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeq", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """The CNN trained briefly on digits (1x8x8, NCHW), its ONNX and .pt2 exports, NCHW data sets."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8): PyTorch's layout
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    train, val = order[:1400], order[1400:]
    torch.manual_seed(0)
    net = DigitsNet()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    for _ in range(15):
        for batch in torch.randperm(len(xt)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(net(xt[batch]), yt[batch]).backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        float_accuracy = float((net(torch.from_numpy(x[val])).argmax(1).numpy() == y[val]).mean())
    folder = tmp_path_factory.mktemp("torch")
    example = torch.from_numpy(x[:1])
    torch.onnx.export(net, (example,), folder / "digits_cnn.onnx", input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    torch.export.save(torch.export.export(net, (example,)), folder / "digits_cnn.pt2")
    np.savez(folder / "calib.npz", x=x[train[:300]], y=y[train[:300]])
    np.savez(folder / "val.npz", x=x[val], y=y[val])
    return {"folder": folder, "net": net, "example": example, "float_accuracy": float_accuracy,
            "onnx": folder / "digits_cnn.onnx", "pt2": folder / "digits_cnn.pt2",
            "calib": folder / "calib.npz", "val": folder / "val.npz"}


def test_the_onnx_model_loads_with_its_batch_fixed_and_its_input_channel_last(trained):
    model = load_model(trained["onnx"])
    assert model.format == "onnx" and model.opset >= 17
    assert model.input.shape == (8, 8, 1) and model.input.source_shape == (1, 8, 8)
    assert model.output.shape == (10,)
    nchw = load_dataset(str(trained["val"]), model.input)  # NCHW data, made channel-last
    assert nchw.x.single.shape[1:] == (8, 8, 1)
    with pytest.raises(BadInput, match=r"\(1, 8, 8\) in NCHW .* or \(8, 8, 1\) channel-last"):
        from edgeq.load import check_dataset
        check_dataset(np.zeros((3, 2, 8, 8), np.float32), None, model.input, "bad.npz")


@pytest.mark.emulator
@pytest.mark.parametrize("kind", ["onnx", "pt2"])
def test_the_trained_cnn_deploys_as_int8_bit_exact_on_the_board(trained, kind, tmp_path):
    assert trained["float_accuracy"] > 0.85, "the CNN did not train"
    out = tmp_path / "out"
    done = edgeq("deploy", trained[kind], "--device", "qemu-mps2-an386", "--quant", "int8",
                 "--data", trained["calib"], "--val", trained["val"], "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["format"] == kind
    fidelity = report["model"]["conversion_fidelity"]
    assert fidelity["identical"] or fidelity["sqnr_db"] >= 40, fidelity
    assert fidelity["reference"].startswith("onnxruntime" if kind == "onnx" else "torch")
    assert report["model"]["inputs"][0]["source_layout"] == "NCHW" and report["model"]["inputs"][0]["layout"] == "NHWC"
    assert "TRANSPOSE" not in report["model"]["ops"]  # the flatten's transpose is folded into the weights
    assert report["quantization"]["runtime"] == "edgeq-c"
    accuracy = report["accuracy"]
    assert abs(accuracy["float"] - trained["float_accuracy"]) < 0.005  # the converted float model is the net
    assert accuracy["float"] - accuracy["quantized"] <= 0.01
    assert report["measure"]["bit_exact_fraction"] == 1.0
    assert "Conversion fidelity" in (out / "report.md").read_text()


def test_an_nn_module_goes_in_through_the_python_api(trained, tmp_path):
    from edgeq.convert.converter import convert
    from edgeq.graph import read_graph

    model = load_torch(trained["net"], trained["example"], tmp_path, name="digits_net")
    assert model.format == "pt2" and model.input.shape == (8, 8, 1)
    float_tflite = convert(model, "fp32")
    ops = read_graph(float_tflite).op_names
    assert "TRANSPOSE" not in ops and "CONV_2D" in ops
    int8 = convert(model, "int8", load_dataset(str(trained["calib"]), model.input))
    assert read_graph(int8).input_tensors()[0].type == "INT8"


def test_the_planner_builds_the_integer_candidates_of_an_onnx_model(trained, tmp_path):
    done = edgeq("plan", trained["onnx"], "--device", "qemu-mps2-an386", "--data", trained["calib"],
                 "--val", trained["val"], "--out", tmp_path / "plan", "--no-measure", "--no-cache")
    assert done.returncode == 0, done.stderr[-3000:]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    by_mode = {}
    for c in plan["candidates"]:
        by_mode.setdefault(c["name"].split("/")[0], []).append(c)
    int8 = [c for name, cs in by_mode.items() if name.startswith("int8") for c in cs]
    assert int8 and any(not c.get("problems") for c in int8)
    assert plan["chosen"]


def _onnx_with(path: Path, op_type: str, opset: int = 17) -> Path:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node(op_type, ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, path)
    return path


def test_an_onnx_op_the_converter_lacks_is_refused_naming_it(tmp_path):
    path = _onnx_with(tmp_path / "lacks.onnx", "Hardmax", 11)
    done = edgeq("convert", path, "--quant", "fp32", "--out", tmp_path / "x.tflite")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Hardmax" in done.stderr and "lacks.onnx" in done.stderr


def test_an_opset_outside_what_the_converter_reads_is_refused_saying_which_work(tmp_path):
    path = _onnx_with(tmp_path / "old.onnx", "Relu", 6)
    done = edgeq("convert", path, "--quant", "fp32", "--out", tmp_path / "x.tflite")
    assert done.returncode == 2 and "opset 6" in done.stderr and "opsets 9 to" in done.stderr, done.stderr


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf \x00\xff" * 10)
    done = edgeq("convert", path, "--quant", "fp32", "--out", tmp_path / "x.tflite")
    assert done.returncode == 2 and "not an ONNX model" in done.stderr, done.stderr


class TwoByTwo(nn.Module):
    """An image (NCHW) and a sensor vector in; points and class scores out."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.sensor = nn.Linear(4, 4)
        self.points = nn.Linear(4 * 4 * 4 + 4, 3)
        self.label = nn.Linear(4 * 4 * 4 + 4, 3)

    def forward(self, image, sensor):
        x = torch.cat([torch.relu(self.conv(image)).flatten(1), torch.relu(self.sensor(sensor))], 1)
        return self.points(x), torch.softmax(self.label(x), 1)


@pytest.fixture(scope="module")
def two_by_two_onnx(tmp_path_factory) -> dict:
    torch.manual_seed(0)
    net = TwoByTwo().eval()
    folder = tmp_path_factory.mktemp("two_by_two_onnx")
    example = (torch.zeros(1, 1, 6, 6), torch.zeros(1, 4))
    torch.onnx.export(net, example, folder / "net.onnx", input_names=["image", "sensor"],
                      output_names=["points", "label"], dynamo=False)
    torch.export.save(torch.export.export(net, example), folder / "net.pt2")
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", image=rng.normal(size=(12, 1, 6, 6)).astype(np.float32),
             sensor=rng.normal(size=(12, 4)).astype(np.float32))
    return {"onnx": folder / "net.onnx", "pt2": folder / "net.pt2", "data": folder / "data.npz", "folder": folder}


def test_an_onnx_model_with_two_inputs_and_two_outputs_loads_them_all_named_in_order(two_by_two_onnx):
    model = load_model(two_by_two_onnx["onnx"])
    assert [(t.name, t.shape, t.source_shape) for t in model.inputs] == [("image", (6, 6, 1), (1, 6, 6)),
                                                                        ("sensor", (4,), None)]
    assert [(t.name, t.shape) for t in model.outputs] == [("points", (3,)), ("label", (3,))]


@pytest.mark.parametrize("kind", ["onnx", "pt2"])
def test_two_inputs_and_outputs_convert_to_a_float_tflite_as_faithful_as_the_source(two_by_two_onnx, kind):
    from edgeq.convert.converter import conversion_fidelity, convert
    from edgeq.graph import read_graph
    from edgeq.load import load_data

    model = load_model(two_by_two_onnx[kind])
    tflite = convert(model, "fp32")
    graph = read_graph(tflite)
    assert [graph.io_name(i) for i in graph.inputs] == [t.name for t in model.inputs]
    assert [graph.io_name(o) for o in graph.outputs] == [t.name for t in model.outputs]
    _, validation = load_data(model, str(two_by_two_onnx["data"]), str(two_by_two_onnx["data"]))
    fidelity = conversion_fidelity(model, tflite, validation)
    assert fidelity["identical"] or fidelity["sqnr_db"] >= 40, fidelity
