"""Code generation and the TFLM op table, on a real small model built and converted here.

The model data is compiled with the host g++ and read back; the op table is checked against
the kernels the installed `tflite-micro` runtime registers and against its interpreter; the
LiteRT harness runs for real as a subprocess. Building main.cc needs a TFLM source tree: those
tests run when TFLM_DIR names one (tests/conftest.py sets it from ../shared/tflm).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tty
from pathlib import Path

import numpy as np
import pytest

import edgeq
from edgeq.codegen import (
    FIRMWARE_MANIFEST,
    RuntimeId,
    arena_size_with_margin,
    c_byte_array,
    cortex_m_tflm_target,
    hello_payload,
    render_model_data,
    render_tflm_project,
    validate_symbol,
)
from edgeq.codegen.tflm_ops import (
    BUILTIN_RESOLVER_METHODS,
    RESOLVER_METHODS,
    check_tflm_ops,
    tflm_resolver_method,
    unsupported_ops,
)
from edgeq.csource import HEX_BYTES_PER_LINE
from edgeq.errors import BadInput
from edgeq.graph import read_graph
from edgeq.measure.interpreters import run_tflm, tflm_arena
from edgeq.profiles import get_profile
from edgeq.quant import params_from_tensor, quantize
from edgeq.resources import RUNTIME_DIR
from edgeq.runtimes import LITERT

INPUT_SHAPE = (8, 8, 3)
CLASSES = 10
MEASURED_ARENA = 4000


# ---------------------------------------------------------------- models built here

def _convert(model, input_shape, io_dtype, seed=0) -> bytes:
    """Full-integer conversion with a fixed batch-1 signature; `io_dtype` int8 or float32."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, *input_shape), tf.float32)])
    def serve(x):
        return model(x)

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    # Through a SavedModel, Keras 3 variables stay resource variables and calibration fails.
    converter.experimental_lower_to_saved_model = False
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(seed)
    converter.representative_dataset = lambda: (
        [rng.standard_normal((1, *input_shape)).astype(np.float32)] for _ in range(16))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8 if io_dtype == "int8" else tf.float32
    converter.inference_output_type = tf.int8 if io_dtype == "int8" else tf.float32
    return converter.convert()


def _many_op_model():
    """Untrained, seeded: most operators a microcontroller classifier uses."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inp = keras.Input(INPUT_SHAPE, batch_size=1)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = layers.Concatenate()([layers.AveragePooling2D(2)(x), layers.MaxPooling2D(2)(x)])
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Add()([x, layers.Activation("hard_swish")(x)])
    x = layers.Multiply()([x, layers.Activation("sigmoid")(x)])
    x = layers.Activation("tanh")(x)
    x = layers.ZeroPadding2D(1)(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.Flatten()(layers.MaxPooling2D(3)(x))])
    out = layers.Softmax()(layers.Dense(CLASSES)(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def keras_model():
    return _many_op_model()


@pytest.fixture(scope="module")
def int8_model(keras_model):
    tflite = _convert(keras_model, INPUT_SHAPE, "int8")
    return tflite, read_graph(tflite, "many_ops_int8.tflite")


@pytest.fixture(scope="module")
def float_io_model(keras_model):
    tflite = _convert(keras_model, INPUT_SHAPE, "float32")
    return tflite, read_graph(tflite, "many_ops_float_io.tflite")


@pytest.fixture(scope="module")
def gelu_model():
    """GELU: an op TFLite has and TFLM does not."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), batch_size=1)
    tflite = _convert(keras.Model(inp, keras.layers.Dense(8, activation="gelu")(inp)), (8,), "int8")
    return tflite, read_graph(tflite, "gelu.tflite")


@pytest.fixture(scope="module")
def while_model():
    """A WHILE loop: its condition and body are further subgraphs with operators of their own."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 4), tf.float32)])
    def halve_three_times(x):
        return tf.while_loop(lambda i, x: i < 3, lambda i, x: (i + 1, x * 0.5 + 1.0), [tf.constant(0), x])[1]

    tflite = tf.lite.TFLiteConverter.from_concrete_functions([halve_three_times.get_concrete_function()]).convert()
    return tflite, read_graph(tflite, "while.tflite")


def _hello(tflite: bytes, graph) -> bytes:
    return hello_payload(tflite, graph, RuntimeId("tflm", "test", "tflite-micro"), 1_000_000_000, 0)


@pytest.fixture(scope="module")
def project(int8_model):
    tflite, graph = int8_model
    return render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph))


def _quantize(x: np.ndarray, tensor) -> np.ndarray:
    return quantize(x, params_from_tensor(tensor))


# ---------------------------------------------------------------- the TFLM op table

def _runtime_registrations() -> set[str]:
    """The kernels the installed tflite-micro runtime defines, from its `Register_<OP>()` symbols."""
    from tflite_micro.python.tflite_micro import runtime

    if shutil.which("nm") is None:
        pytest.skip("needs nm (binutils)")
    library = next(Path(runtime.__file__).parent.glob("_runtime*.so"))
    symbols = subprocess.run(["nm", "-DC", "--defined-only", str(library)], capture_output=True, text=True,
                             check=True).stdout
    return set(re.findall(r"\bRegister_([A-Z0-9_]+)\(\)", symbols))


def test_every_builtin_in_the_table_has_a_kernel_in_the_tflm_runtime():
    registered = _runtime_registrations()
    assert [op for op in BUILTIN_RESOLVER_METHODS if op not in registered] == []


def test_every_builtin_kernel_of_the_tflm_runtime_is_in_the_table():
    from ai_edge_litert import schema_py_generated as schema

    builtins = {k for k in vars(schema.BuiltinOperator) if not k.startswith("_")}
    kernels = _runtime_registrations() & builtins
    assert sorted(kernels - set(BUILTIN_RESOLVER_METHODS)) == []


def test_a_model_of_ops_the_table_supports_runs_in_the_tflm_interpreter(int8_model, float_io_model):
    for tflite, graph in (int8_model, float_io_model):
        assert unsupported_ops(graph.op_names) == []
        x = np.random.default_rng(1).standard_normal((2, *INPUT_SHAPE)).astype(np.float32)
        if graph.input_tensors()[0].type == "INT8":
            x = _quantize(x, graph.input_tensors()[0])
        assert run_tflm(tflite, x)[0].shape == (2, CLASSES)
    covered = set(int8_model[1].op_names) | set(float_io_model[1].op_names)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE",
            "SOFTMAX", "ADD", "MUL", "QUANTIZE", "DEQUANTIZE", "MEAN", "PAD", "CONCATENATION", "LOGISTIC",
            "TANH", "LEAKY_RELU", "HARD_SWISH"} <= covered


def test_an_op_the_table_lacks_is_one_the_tflm_interpreter_cannot_run(gelu_model):
    from tflite_micro.python.tflite_micro import runtime

    tflite, graph = gelu_model
    assert unsupported_ops(graph.op_names) == ["GELU"]
    with pytest.raises(RuntimeError):
        runtime.Interpreter.from_bytes(tflite)


def test_an_op_tflm_lacks_is_refused_naming_it_and_its_index(gelu_model):
    tflite, graph = gelu_model
    index = next(op.index for op in graph.operators if op.opcode == "GELU")
    with pytest.raises(BadInput, match=rf"^op 'GELU' \(index {index}\) is not supported by TensorFlow Lite Micro"):
        check_tflm_ops(graph.op_names, graph)
    with pytest.raises(BadInput, match="op 'GELU'"):
        render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph))


def test_resolver_method_is_the_micro_mutable_op_resolver_call():
    assert tflm_resolver_method("CONV_2D") == "AddConv2D"
    assert tflm_resolver_method("DEPTHWISE_CONV_2D") == "AddDepthwiseConv2D"
    assert tflm_resolver_method("CUSTOM:TFLite_Detection_PostProcess") == "AddDetectionPostprocess"


def test_resolver_method_of_an_unknown_op_names_it_and_its_index():
    with pytest.raises(BadInput, match=r"^op 'FOO' \(index 3\) is not supported by TensorFlow Lite Micro$"):
        tflm_resolver_method("FOO", 3)


def test_unsupported_ops_lists_each_missing_op_once_in_order():
    assert unsupported_ops(["CONV_2D", "GELU", "FOO", "GELU", "SOFTMAX"]) == ["GELU", "FOO"]


# ---------------------------------------------------------------- symbols

@pytest.mark.parametrize("name, reason", [
    ("int", "reserved word"), ("class", "reserved word"), ("alignas", "reserved word"),
    ("9lives", "not a C identifier"), ("my-model", "not a C identifier"), ("", "not a C identifier"),
    ("__model", "reserved for the compiler"), ("_Model", "reserved for the compiler"),
])
def test_a_bad_symbol_prefix_is_rejected_naming_it(int8_model, name, reason):
    tflite, graph = int8_model
    with pytest.raises(BadInput, match=rf"symbol prefix '{re.escape(name)}' .*{reason}"):
        render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph), prefix=name)


def test_a_bad_model_symbol_is_rejected_naming_it(int8_model):
    with pytest.raises(BadInput, match=r"model symbol 'struct' is a C/C\+\+ reserved word"):
        render_model_data(int8_model[0], symbol="struct")


def test_a_valid_symbol_is_returned_unchanged():
    assert validate_symbol("kws_model_v2") == "kws_model_v2"


# ---------------------------------------------------------------- model data, compiled

READBACK_MAIN = r"""
#include <cstdint>
#include <cstdio>
#include "model_data.h"
int main(int, char **argv) {
  FILE *f = std::fopen(argv[1], "wb");
  if (f == nullptr || std::fwrite(SYMBOL, 1, SYMBOL_len, f) != SYMBOL_len) return 1;
  std::fclose(f);
  std::printf("%u %u\n", SYMBOL_len, (unsigned)(reinterpret_cast<std::uintptr_t>(SYMBOL) % 16));
  return 0;
}
"""


@pytest.fixture(scope="module")
def model_data_readback(int8_model, tmp_path_factory):
    """Compiles model_data.cc with g++ beside a main that writes the array back out."""
    if shutil.which("g++") is None:
        pytest.skip("needs the host C++ compiler (g++)")
    tflite = int8_model[0]
    build = tmp_path_factory.mktemp("model_data")
    for path, text in render_model_data(tflite, symbol="kws_model").items():
        (build / path).write_text(text)
    (build / "readback.cc").write_text(READBACK_MAIN.replace("SYMBOL", "kws_model"))
    subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1",
                    str(build / "model_data.cc"), str(build / "readback.cc"), "-o", str(build / "readback")],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(build / "readback"), str(build / "readback.bin")], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"bytes": (build / "readback.bin").read_bytes(), "len": int(out[0]), "misalignment": int(out[1])}


def test_compiled_model_array_holds_the_tflite_byte_for_byte(model_data_readback, int8_model):
    assert model_data_readback["bytes"] == int8_model[0]


def test_compiled_model_length_is_the_tflite_size(model_data_readback, int8_model):
    assert model_data_readback["len"] == len(int8_model[0])


def test_compiled_model_array_is_16_byte_aligned(model_data_readback):
    assert model_data_readback["misalignment"] == 0


def test_model_array_lines_hold_twelve_bytes_like_xxd():
    lines = c_byte_array(bytes(range(30))).splitlines()
    assert lines[0] == "  " + ", ".join(f"0x{b:02x}" for b in range(12)) + ","
    assert [len(re.findall(r"0x[0-9a-f]{2}", line)) for line in lines] == [HEX_BYTES_PER_LINE, HEX_BYTES_PER_LINE, 6]
    assert lines[-1].endswith("0x1d")


def test_a_4_mb_model_renders_every_byte_once():
    data = np.random.default_rng(0).integers(0, 256, 4 << 20, dtype=np.uint8).tobytes()
    files = render_model_data(data)
    assert files["model_data.cc"].count("0x") == len(data)


def test_an_empty_model_is_refused():
    with pytest.raises(BadInput, match="model is empty"):
        render_model_data(b"")


# ---------------------------------------------------------------- generated files, all kinds

def _all_outputs(int8_model, project) -> dict[str, str]:
    tflite = int8_model[0]
    litert = LITERT.project(get_profile("pixel-8"), tflite, "m")
    return {**project, **{f"litert/{k}": v for k, v in litert.items() if isinstance(v, str) and k != FIRMWARE_MANIFEST}}


def test_every_generated_file_first_line_names_edgeq_version_and_model_sha256(int8_model, project):
    sha = hashlib.sha256(int8_model[0]).hexdigest()
    runtime_copies = {name for name in project if Path(name).name in ("eq_protocol.h", "eq_protocol.c")}
    for path, text in _all_outputs(int8_model, project).items():
        if path in runtime_copies:
            continue  # edgeq's own runtime sources, copied verbatim
        first = text.splitlines()[0]
        assert f"edgeq {edgeq.__version__}" in first and sha in first and "Generated" in first, path


def test_rendering_twice_gives_byte_identical_files(int8_model, project):
    tflite, graph = int8_model
    again = render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph))
    assert again == project
    pixel = get_profile("pixel-8")
    assert LITERT.project(pixel, tflite, "m") == LITERT.project(pixel, tflite, "m")


def test_project_carries_edgeq_protocol_as_shipped(project):
    for name in ("eq_protocol.h", "eq_protocol.c"):
        shipped = (RUNTIME_DIR / name).read_text()
        assert project[name] == shipped
        assert project[f"arduino/edgeq/{name}"] == shipped


# ---------------------------------------------------------------- main.cc

def test_resolver_registers_exactly_the_models_ops(project, int8_model):
    graph = int8_model[1]
    main = project["main.cc"]
    method_to_op = {method: op for op, method in RESOLVER_METHODS.items()}
    registered = [method_to_op[m] for m in re.findall(r"op_resolver\.(Add\w+)\(\)", main)]
    assert registered == graph.op_names
    (count,) = re.findall(r"MicroMutableOpResolver<(\d+)>", main)
    assert int(count) == len(graph.op_names)


def test_resolver_also_registers_the_ops_of_nested_subgraphs(while_model):
    tflite, graph = while_model
    assert graph.op_names == ["WHILE"]
    main = render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph))["main.cc"]
    assert re.findall(r"op_resolver\.(Add\w+)\(\)", main) == ["AddWhile", "AddLess", "AddAdd", "AddMul"]
    assert "MicroMutableOpResolver<4>" in main
    np.testing.assert_allclose(run_tflm(tflite, np.ones((1, 4), np.float32))[0], [[1.875] * 4])


def test_every_registration_status_is_checked(project):
    calls = [line for line in project["main.cc"].splitlines() if "op_resolver.Add" in line]
    assert calls and all("!= kTfLiteOk" in line for line in calls)


def test_arena_is_the_measured_one_plus_the_margin_rounded_up_to_16():
    assert arena_size_with_margin(1000, 0.10) == 1104  # 1100, rounded up
    assert arena_size_with_margin(1600, 0.0) == 1600
    assert arena_size_with_margin(1, 0.10) == 16


def test_main_cc_reserves_the_arena_with_margin_and_says_why(project):
    main = project["main.cc"]
    expected = arena_size_with_margin(MEASURED_ARENA)
    assert f"constexpr size_t kArenaSize = {expected};" in main
    assert "alignas(16) uint8_t tensor_arena[kArenaSize];" in main
    assert f"{MEASURED_ARENA} bytes measured" in main and "10% margin" in main and "32-bit" in main


def test_a_negative_arena_is_refused_naming_the_value(int8_model):
    tflite, graph = int8_model
    with pytest.raises(BadInput, match="arena_bytes must be a positive integer.*-5"):
        render_tflm_project(tflite, graph, -5, _hello(tflite, graph))


def test_main_cc_embeds_the_hello_payload_byte_for_byte(project, int8_model):
    hello = _hello(*int8_model)
    body = re.search(r"uint8_t hello_payload\[(\d+)\] = \{(.*?)\};", project["main.cc"], re.S)
    assert int(body.group(1)) == len(hello)
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body.group(2))) == hello


def test_main_cc_patches_the_arena_used_into_hello_and_serves(project):
    main = project["main.cc"]
    assert "eq_hello_set_arena_bytes(hello_payload, static_cast<uint32_t>(interpreter->arena_used_bytes()))" in main
    assert main.index("eq_hello_set_arena_bytes") < main.index("eq_serve(&server)")


def test_main_cc_states_the_models_tensor_sizes(project, int8_model):
    graph = int8_model[1]
    assert f"kInputBytes[kInputCount] = {{{graph.input_tensors()[0].nbytes}}};" in project["main.cc"]
    assert f"kOutputBytes[kOutputCount] = {{{graph.output_tensors()[0].nbytes}}};" in project["main.cc"]


def test_prefix_names_the_harness_symbols_and_the_arduino_sketch(int8_model):
    tflite, graph = int8_model
    files = render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph), prefix="kws")
    assert "extern \"C\" int kws_invoke(void)" in files["main.cc"]
    assert "arduino/kws/kws.ino" in files and "arduino/kws/kws_harness.cpp" in files


# ---------------------------------------------------------------- Makefile and Arduino sketch

def _make_value(project: dict[str, str], folder: Path, variable: str, *args: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("needs GNU make")
    folder.mkdir(exist_ok=True)
    (folder / "Makefile").write_text(project["Makefile"])
    result = subprocess.run(["make", "-s", "-C", str(folder), *args, f"print-{variable}"],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_makefile_cross_compiles_tflm_for_a_cortex_m4_with_its_cmsis_device(int8_model, tmp_path):
    tflite, graph = int8_model
    target = cortex_m_tflm_target("cortex-m4", ("-mcpu=cortex-m4", "-mfloat-abi=hard"))
    files = render_tflm_project(tflite, graph, MEASURED_ARENA, _hello(tflite, graph), target=target)
    assert _make_value(files, tmp_path, "CXX", "TFLM_DIR=/opt/tflm") == "arm-none-eabi-g++"
    assert _make_value(files, tmp_path, "AR", "TFLM_DIR=/opt/tflm") == "arm-none-eabi-ar"
    defines = _make_value(files, tmp_path, "TFLM_DEFINES", "TFLM_DIR=/opt/tflm").split()
    assert "-DCMSIS_NN" in defines and "-DARMCM4" in defines
    assert "-mcpu=cortex-m4" in _make_value(files, tmp_path, "TFLM_CXXFLAGS", "TFLM_DIR=/opt/tflm").split()


def test_makefile_defaults_to_the_host_compiler_without_a_cmsis_device(project, tmp_path):
    assert _make_value(project, tmp_path, "CXX", "TFLM_DIR=/opt/tflm") == "g++"
    assert _make_value(project, tmp_path, "TFLM_DEVICE", "TFLM_DIR=/opt/tflm") == ""


def test_makefile_compiles_with_tflms_include_paths_and_static_memory(project, tmp_path):
    flags = _make_value(project, tmp_path, "CXXFLAGS", "TFLM_DIR=/opt/tflm").split()
    for path in ("/opt/tflm/.", "/opt/tflm/third_party/gemmlowp", "/opt/tflm/third_party/flatbuffers/include",
                 "/opt/tflm/third_party/kissfft", "/opt/tflm/third_party/ruy", "/opt/tflm/third_party/cmsis_nn"):
        assert f"-I{path}" in flags
    assert "-DTF_LITE_STATIC_MEMORY" in flags


def test_makefile_without_a_tflm_tree_says_how_to_get_one(project, tmp_path):
    if shutil.which("make") is None:
        pytest.skip("needs GNU make")
    (tmp_path / "Makefile").write_text(project["Makefile"])
    result = subprocess.run(["make", "-C", str(tmp_path), "TFLM_DIR="], capture_output=True, text=True)
    assert result.returncode != 0
    assert "edgeq: set TFLM_DIR to a TFLM source tree made by create_tflm_tree.py" in result.stdout + result.stderr


def test_unknown_cortex_m_core_is_refused_naming_it():
    with pytest.raises(BadInput, match="core 'cortex-m99' has no CMSIS device header in TFLM's tree"):
        cortex_m_tflm_target("cortex-m99")


def test_arduino_sketch_includes_the_tflm_library_and_serves_on_serial(project):
    sketch = project["arduino/edgeq/edgeq.ino"]
    board = project["arduino/edgeq/eq_board_arduino.cpp"]
    assert "#include <TensorFlowLite.h>" in sketch and "eq_serve(&server)" in sketch
    assert "#include <TensorFlowLite.h>" in project["arduino/edgeq/edgeq_harness.cpp"]
    assert "Serial.read()" in board and "Serial.write(data, length)" in board and "Serial.begin(115200)" in board
    assert project["arduino/edgeq/model_data.cpp"] == project["model_data.cc"]
    assert "uint64_t eq_board_cycles(void);" in project["arduino/edgeq/eq_board.h"]


# ---------------------------------------------------------------- the TFLM harness, built and served

@pytest.fixture(scope="module")
def tflm_dir() -> Path:
    value = os.environ.get("TFLM_DIR")  # tests/conftest.py sets it from ../shared/tflm
    if not value:
        pytest.skip("needs a TFLM source tree: set TFLM_DIR (or put one in ../shared/tflm)")
    return Path(value)


@pytest.fixture(scope="module")
def build_tflm_firmware(tflm_dir, tmp_path_factory):
    """make in a folder holding the project and the host board support; returns the program."""
    from edgeq.boards import BoardParams
    from edgeq.codegen.board import render_board

    host = BoardParams(board="host", family="host", cpu="x86-64", fpu=True, clock_hz=1_000_000_000, cflags=(),
                       cycles_unit="ns")

    def build(files: dict[str, str]) -> Path:
        folder = tmp_path_factory.mktemp("tflm_project")
        for path, text in {**files, **{f"board/{k}": v for k, v in render_board(host).items()}}.items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        subprocess.run(["make", "-j2", "-C", str(folder), f"TFLM_DIR={tflm_dir}"], check=True, capture_output=True)
        return folder / "firmware.elf"

    return build


def _serve(program: Path, talk):
    """Runs the firmware on a pty (the host board's port is stdin/stdout) and talks to it via Link."""
    from edgeq.device.link import Link

    master, slave = os.openpty()
    tty.setraw(slave)
    link = Link.open(os.ttyname(slave))
    device = subprocess.Popen([str(program)], stdin=master, stdout=master, stderr=subprocess.DEVNULL,
                              close_fds=True)
    os.close(master)
    try:
        return talk(link)
    finally:
        link.close()
        os.close(slave)  # the last slave fd: the device reads end of input, and eq_serve returns
        device.wait(timeout=5)



@pytest.mark.host
def test_tflm_firmware_built_from_a_tflm_tree_answers_like_the_tflm_interpreter(int8_model, build_tflm_firmware):
    tflite, graph = int8_model
    arena = tflm_arena(tflite).smallest_bytes
    program = build_tflm_firmware(render_tflm_project(tflite, graph, arena, _hello(tflite, graph)))
    x = _quantize(np.random.default_rng(3).standard_normal((4, *INPUT_SHAPE)), graph.input_tensors()[0])

    def talk(link):
        info = link.hello(timeout=5)
        return info, [np.frombuffer(link.infer(sample.tobytes())[1], np.int8) for sample in x]

    info, outputs = _serve(program, talk)
    assert 0 < info.arena_bytes <= arena_size_with_margin(arena)  # the arena really used, patched in
    np.testing.assert_array_equal(np.stack(outputs), run_tflm(tflite, x)[0])


@pytest.mark.host
def test_tflm_firmware_with_too_small_an_arena_says_so_instead_of_hello(int8_model, build_tflm_firmware):
    from edgeq.protocol import ERROR, FrameDecoder, decode_error

    tflite, graph = int8_model
    program = build_tflm_firmware(render_tflm_project(tflite, graph, 256, _hello(tflite, graph), margin_fraction=0))
    # Pipes, not a pty: the firmware exits after the ERROR frame, and a pty drops what its closed
    # master side had not yet delivered.
    run = subprocess.run([str(program)], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    frames = FrameDecoder().feed(run.stdout)
    assert run.returncode == 1 and [frame.type for frame in frames] == [ERROR]
    assert "AllocateTensors() failed: the arena (256 bytes) is too small" in decode_error(frames[0].payload)[1]


