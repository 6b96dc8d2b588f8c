"""Stage 8, code generation: the model as a C array, a firmware project for edgeq-c or TFLM with
board support and a Makefile, an Arduino sketch, or a LiteRT harness. Every renderer is pure:
data in, `{relative path: text}` out (docs/codegen.md)."""

from edgeq.codegen.boards import board_params_for, render_board
from edgeq.codegen.litert import LITERT_DELEGATES, render_litert_harness
from edgeq.codegen.project import (
                                   render_edgeq_c_harness,
                                   render_edgeq_c_project,
                                   render_firmware_makefile,
                                   render_project,
)
from edgeq.codegen.sources import (
                                   DEFAULT_MODEL_SYMBOL,
                                   DEFAULT_PREFIX,
                                   FIRMWARE_MANIFEST,
                                   FIRMWARE_PROGRAM,
                                   HELLO_ARENA_OFFSET,
                                   firmware_manifest,
                                   hello_payload,
                                   render_model_data,
)
from edgeq.codegen.tflm import (
                                   DEFAULT_ARENA_MARGIN,
                                   DEFAULT_BAUD,
                                   HOST_TFLM_TARGET,
                                   TflmTarget,
                                   arena_size_with_margin,
                                   cortex_m_tflm_target,
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
