"""Stage 8, code generation: the model as a C array, a firmware project for edgeq-c or TFLM with
board support and a Makefile, an Arduino sketch, or a LiteRT harness. Every renderer is pure:
data in, `{relative path: text}` out (docs/codegen.md). Which renderer a model gets is its
runtime's choice (edgeq.runtimes)."""

from edgeq.codegen.board import compile_flags, link_flags, render_board
from edgeq.codegen.edgeq_c import render_edgeq_c_harness, render_edgeq_c_project
from edgeq.codegen.firmware import render_firmware_makefile
from edgeq.codegen.litert import harness_command, render_litert_project
from edgeq.codegen.sources import (
    DEFAULT_MODEL_SYMBOL,
    DEFAULT_PREFIX,
    FIRMWARE_MANIFEST,
    FIRMWARE_PROGRAM,
    HELLO_ARENA_OFFSET,
    Manifest,
    RuntimeId,
    Step,
    firmware_manifest,
    hello_payload,
    read_manifest,
    render_model_data,
)
from edgeq.codegen.tflm import (
    DEFAULT_ARENA_MARGIN,
    DEFAULT_BAUD,
    HOST_TFLM_TARGET,
    TflmTarget,
    arena_size_with_margin,
    cortex_m_tflm_target,
    render_tflm_firmware,
    render_tflm_project,
    tflm_version,
)
from edgeq.csource import (
    ARENA_ALIGNMENT,
    C_RESERVED_WORDS,
    c_byte_array,
    generated_notice,
    model_sha256,
    validate_symbol,
)

__all__ = ["ARENA_ALIGNMENT", "C_RESERVED_WORDS", "DEFAULT_ARENA_MARGIN", "DEFAULT_BAUD", "DEFAULT_MODEL_SYMBOL",
           "DEFAULT_PREFIX", "FIRMWARE_MANIFEST", "FIRMWARE_PROGRAM", "HELLO_ARENA_OFFSET",
           "HOST_TFLM_TARGET", "Manifest", "RuntimeId", "Step", "TflmTarget",
           "arena_size_with_margin", "c_byte_array", "compile_flags", "cortex_m_tflm_target",
           "firmware_manifest", "generated_notice", "hello_payload", "link_flags", "model_sha256",
           "read_manifest", "render_board", "render_edgeq_c_harness", "render_edgeq_c_project",
           "render_firmware_makefile", "render_litert_project", "harness_command", "render_model_data",
           "render_tflm_firmware",
           "render_tflm_project", "tflm_version", "validate_symbol"]
