"""edgeq-c end to end: compile whole models, build them with real compilers, and run
them beside the tflite_micro interpreter."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from edgeq.aot import compile_model
from edgeq.aot.host import STRICT_CFLAGS, HostModel, build_program, build_shared_library, run_program, write_sources
from edgeq.errors import BadInput
from edgeq.graph import read_graph

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf-tiny"
MLPERF_INT8 = ("kws_ref_model.tflite", "vww_96_int8.tflite", "pretrainedResnet_quant.tflite", "ad01_int8.tflite")
ARM_GCC = shutil.which("arm-none-eabi-gcc")

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
needs_arm = pytest.mark.skipif(ARM_GCC is None, reason="needs arm-none-eabi-gcc")


def mlperf(name: str) -> bytes:
    path = MLPERF / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def tflm_run(tflite: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(tflite)
    for i, x in enumerate(inputs):
        interpreter.set_input(x, i)
    interpreter.invoke()
    return [interpreter.get_output(i) for i in range(len(read_graph(tflite).outputs))]


def random_inputs(compiled, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in compiled.inputs:
        if t.dtype == "FLOAT32":
            out.append((rng.normal(size=t.shape) * 4).astype(np.float32))
        else:
            out.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
    return out


def _convert(model, input_shape, float_interface: bool) -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32, name="image")])
    def serve(x):
        return model(x)

    rng = np.random.default_rng(7)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(0, 16, size=input_shape).astype(np.float32)]
                                                for _ in range(24))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_interface:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


@pytest.fixture(scope="module")
def digits_tflite() -> bytes:
    """The digits example's network (random weights), float in and out: QUANTIZE and
    DEQUANTIZE at the edges, RESHAPE for Flatten."""
    import tf_keras as keras

    L = keras.layers
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 1), batch_size=1),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(32, activation="relu"),
        L.Dense(10, activation="softmax"),
    ])
    return _convert(model, (1, 8, 8, 1), float_interface=True)


@pytest.fixture(scope="module")
def squared_difference_tflite() -> bytes:
    import tensorflow as tf
    import tf_keras as keras

    inp = keras.Input((4, 4, 2), batch_size=1)
    model = keras.Model(inp, keras.layers.Conv2D(2, 1)(inp))

    @tf.function(input_signature=[tf.TensorSpec((1, 4, 4, 2), tf.float32)])
    def serve(x):
        y = model(x)
        return tf.math.squared_difference(y, x)

    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.normal(size=(1, 4, 4, 2)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


# ---- bit exactness ----

@needs_gcc
@pytest.mark.shared
@pytest.mark.parametrize("name", MLPERF_INT8)
def test_mlperf_tiny_model_matches_tflm_byte_for_byte(name, tmp_path):
    tflite = mlperf(name)
    compiled = compile_model(tflite, prefix="m")
    host = HostModel(build_shared_library(compiled, tmp_path), compiled)
    for seed in range(3):
        xs = random_inputs(compiled, seed)
        for ref, ours in zip(tflm_run(tflite, xs), host.run(xs)):
            assert np.array_equal(ref, ours), f"{name} seed {seed}: {np.sum(ref != ours)} values differ"


@needs_gcc
@pytest.mark.shared
@pytest.mark.parametrize("name", ("vww_96_float.tflite", "pretrainedResnet.tflite", "ad01_fp32.tflite"))
def test_float32_mlperf_tiny_model_matches_tflm_within_float_rounding(name, tmp_path):
    """Float outputs are compared with a tight tolerance, not bytes (they agree bit for bit
    on x86-64 today, but a compiler may contract to FMA on other targets)."""
    tflite = mlperf(name)
    compiled = compile_model(tflite, prefix="f")
    host = HostModel(build_shared_library(compiled, tmp_path), compiled)
    xs = random_inputs(compiled, 0)
    for ref, ours in zip(tflm_run(tflite, xs), host.run(xs)):
        np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.shared
def test_hybrid_model_with_float_activations_and_int8_weights_is_rejected_by_name():
    with pytest.raises(BadInput, match=r"op 0 CONV_2D \(inputs FLOAT32, INT8, FLOAT32 -> FLOAT32\) is not supported"):
        compile_model(mlperf("kws_ref_model_float32.tflite"))


@needs_gcc
def test_float_interface_model_quantizes_and_dequantizes_exactly_like_tflm(digits_tflite, tmp_path):
    compiled = compile_model(digits_tflite)
    assert compiled.ops[0].split()[1] == "QUANTIZE" and compiled.ops[-1].split()[1] == "DEQUANTIZE"
    host = HostModel(build_shared_library(compiled, tmp_path), compiled)
    for seed in range(3):
        xs = random_inputs(compiled, seed)
        ref, ours = tflm_run(digits_tflite, xs)[0], host.run(xs)[0]
        assert ours.dtype == np.float32
        assert ref.tobytes() == ours.tobytes()


# ---- sanitizers and strict compilers ----

@needs_gcc
def test_digits_model_runs_clean_under_address_and_undefined_sanitizers(digits_tflite, tmp_path):
    compiled = compile_model(digits_tflite)
    program = build_program(compiled, tmp_path,
                            cflags=("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"))
    xs = random_inputs(compiled, 0)
    assert run_program(program, compiled, xs)[0].tobytes() == tflm_run(digits_tflite, xs)[0].tobytes()


@needs_gcc
@pytest.mark.shared
def test_kws_model_runs_clean_under_address_and_undefined_sanitizers(tmp_path):
    tflite = mlperf("kws_ref_model.tflite")
    compiled = compile_model(tflite)
    program = build_program(compiled, tmp_path,
                            cflags=("-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"))
    xs = random_inputs(compiled, 1)
    assert np.array_equal(run_program(program, compiled, xs)[0], tflm_run(tflite, xs)[0])


def _arm_objects(compiled, directory: Path) -> list[Path]:
    write_sources(compiled, directory)
    objects = []
    for src in compiled.sources:
        obj = directory / (src[:-2] + ".o")
        subprocess.run([ARM_GCC, *STRICT_CFLAGS, "-mcpu=cortex-m4", "-mthumb", "-Os", "-ffunction-sections",
                        "-I", str(directory), "-c", str(directory / src), "-o", str(obj)],
                       check=True, capture_output=True, text=True)
        objects.append(obj)
    return objects


@needs_arm
def test_generated_code_compiles_strictly_for_cortex_m4(digits_tflite, tmp_path):
    objects = _arm_objects(compile_model(digits_tflite), tmp_path)
    assert any(o.name == "edgeq_model.o" for o in objects)


@needs_arm
@pytest.mark.shared
def test_kws_kernel_code_fits_in_16_kib_on_cortex_m4(tmp_path):
    compiled = compile_model(mlperf("kws_ref_model.tflite"))
    kernels = [o for o in _arm_objects(compiled, tmp_path) if o.name.startswith("eq_")]
    out = subprocess.run(["arm-none-eabi-size", *map(str, kernels)], check=True, capture_output=True, text=True).stdout
    text = sum(int(line.split()[0]) for line in out.splitlines()[1:])
    assert 0 < text <= 16 * 1024, out


# ---- generated API ----

def test_generated_files_are_deterministic_and_name_version_and_model_hash(digits_tflite):
    import hashlib

    from edgeq import __version__

    a, b = compile_model(digits_tflite), compile_model(digits_tflite)
    assert a.files == b.files
    sha = hashlib.sha256(digits_tflite).hexdigest()
    for name in ("edgeq_model.h", "edgeq_model.c"):
        first = a.files[name].splitlines()[0]
        assert first.startswith("/*") and f"edgeq {__version__}" in first and sha in first


def test_header_declares_arena_size_io_quantization_and_invoke(digits_tflite):
    compiled = compile_model(digits_tflite, prefix="digits")
    header = compiled.files["digits_model.h"]
    assert f"#define DIGITS_ARENA_BYTES {compiled.arena_bytes}" in header
    assert "#define DIGITS_INPUT0_DIMS {1, 8, 8, 1}" in header
    assert "#define DIGITS_INPUT0_TYPE float" in header
    assert re.search(r"#define DIGITS_OUTPUT0_ELEMENTS 10\b", header)
    assert "int digits_invoke(void);" in header and "float *digits_input(void);" in header
    assert "digits_model.c" in compiled.files and "eq_conv_s8.c" in compiled.files


@needs_gcc
def test_arena_can_be_provided_by_the_application(digits_tflite, tmp_path):
    compiled = compile_model(digits_tflite)
    write_sources(compiled, tmp_path)
    (tmp_path / "app.c").write_text(
        '#include "edgeq_model.h"\n'
        "uint8_t edgeq_arena[EDGEQ_ARENA_BYTES];\n"
        "int main(void) { int i; for (i = 0; i < EDGEQ_INPUT_ELEMENTS; i++) edgeq_input()[i] = 1.0f;\n"
        "  return edgeq_invoke() == 0 && edgeq_input_ptr(0) >= (void *)edgeq_arena ? 0 : 1; }\n")
    exe = tmp_path / "app"
    sources = [str(tmp_path / s) for s in compiled.sources] + [str(tmp_path / "app.c")]
    subprocess.run(["gcc", *STRICT_CFLAGS, "-DEDGEQ_ARENA_EXTERNAL", "-I", str(tmp_path), *sources, "-o", str(exe),
                    "-lm"], check=True, capture_output=True)
    assert subprocess.run([str(exe)]).returncode == 0


def test_reshape_is_an_alias_without_a_kernel_call(digits_tflite):
    graph = read_graph(digits_tflite)
    compiled = compile_model(digits_tflite)
    assert "RESHAPE" in graph.op_names
    assert not any("RESHAPE" in op for op in compiled.ops)
    assert len(compiled.ops) == len(graph.operators) - graph.op_names.count("RESHAPE")


def test_arena_is_at_least_the_peak_of_live_tensors(digits_tflite):
    compiled = compile_model(digits_tflite)
    assert compiled.lower_bound_bytes == max(compiled.live_bytes)
    assert compiled.arena_bytes >= compiled.lower_bound_bytes > 0
    assert len(compiled.macs) == len(compiled.ops) and sum(compiled.macs) > 0


@pytest.mark.shared
def test_mac_count_of_kws_matches_its_layers():
    compiled = compile_model(mlperf("kws_ref_model.tflite"))
    graph = read_graph(mlperf("kws_ref_model.tflite"))
    conv0 = graph.operators[0]
    filt, out = graph.tensors[conv0.inputs[1]], graph.tensors[conv0.outputs[0]]
    assert compiled.macs[0] == int(np.prod(out.shape)) * int(np.prod(filt.shape[1:]))


# ---- bad input ----

def test_unsupported_op_is_named_with_its_index_and_types(squared_difference_tflite):
    graph = read_graph(squared_difference_tflite)
    index = next(op.index for op in graph.operators if op.opcode == "SQUARED_DIFFERENCE")
    with pytest.raises(BadInput, match=rf"op {index} SQUARED_DIFFERENCE \(inputs INT8, INT8 -> INT8\) "
                                       r"is not supported by edgeq-c"):
        compile_model(squared_difference_tflite)


@pytest.mark.parametrize("prefix", ["int", "static", "2fast", "eq_model", "my-model", ""])
def test_prefix_must_be_a_c_identifier_and_not_reserved(digits_tflite, prefix):
    with pytest.raises(BadInput, match="prefix"):
        compile_model(digits_tflite, prefix=prefix)


def test_not_a_tflite_file_is_bad_input():
    with pytest.raises(BadInput, match="not a TensorFlow Lite flatbuffer"):
        compile_model(b"\x00" * 64, source="model.bin")
