"""Which files of a TFLM source tree a firmware compiles: the framework, and the kernels of the
model's operators only (with their CMSIS-NN replacements and the CMSIS-NN sources those call).

A tree made by TFLM's `create_tflm_tree.py` with `OPTIMIZED_KERNEL_DIR=cmsis_nn` holds the CMSIS-NN
version of a kernel *instead of* the reference one (there is `kernels/cmsis_nn/conv.cc` and no
`kernels/conv.cc`), so the firmware always compiles the CMSIS-NN kernels, on the host too (CMSIS-NN's
portable C). The tables are read from tensorflow/tflite-micro@90b983c2 (the `Register_*` each kernel
file defines, the `kernels/*.h` it includes and the `*_common.cc` that implements them) and
ARM-software/CMSIS-NN@4ab83cc3 (which `Source/` folder defines each `arm_*` function a kernel calls).
Paths are relative to the tree's root; the Makefile checks each exists and names the op that needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeq.errors import BadInput

KERNELS = "tensorflow/lite/micro/kernels"
CMSIS_NN_SOURCE = "third_party/cmsis_nn/Source"

# The interpreter, allocator, planner and flatbuffer reading: every *.cc in these folders but the
# test helpers (TFLM's Makefile MICROLITE_CC_BASE_SRCS, less what a firmware never links).
FRAMEWORK_DIRS = (
    "tensorflow/lite/micro", "tensorflow/lite/micro/arena_allocator", "tensorflow/lite/micro/memory_planner",
    "tensorflow/lite/micro/tflite_bridge", "tensorflow/lite/core/c", "tensorflow/lite/core/api",
    "tensorflow/compiler/mlir/lite/core/api", "tensorflow/compiler/mlir/lite/schema",
    # TFLite's helpers the kernels share (quantization multipliers, RuntimeShape, tensor utils).
    "tensorflow/lite/kernels", "tensorflow/lite/kernels/internal", "tensorflow/lite/kernels/internal/reference",
    # DebugLog and the tick counter: the tree's only platform files; portable C++ on the host too.
    "tensorflow/lite/micro/cortex_m_generic",
)
FRAMEWORK_EXCLUDED = ("%_test.cc", "%/test_helpers.cc", "%/test_helper_custom_ops.cc",
                      "%/fake_micro_context.cc", "%/mock_micro_graph.cc")
# Helpers every kernel calls (GetEvalInput, the quantization multipliers).
ALWAYS_KERNELS = ("kernel_util",)

# Kernel files (stems under KERNELS) per operator: the file that defines its Register_*() and the
# *_common.cc files implementing the kernels/*.h it includes.
_SAME_NAME = ("add_n", "batch_to_space_nd", "broadcast_args", "broadcast_to", "call_once", "cast", "ceil",
              "concatenation", "cumsum", "depth_to_space", "div", "dynamic_update_slice", "elu",
              "embedding_lookup", "exp", "expand_dims", "fill", "floor", "floor_div", "floor_mod", "gather",
              "gather_nd", "l2_pool_2d", "log_softmax", "mirror_pad", "neg", "pack", "read_variable", "round",
              "shape", "slice", "space_to_batch_nd", "space_to_depth", "split", "split_v", "squared_difference",
              "squeeze", "tanh", "unpack", "var_handle", "while", "zeros_like", "assign_variable", "if")
OP_KERNELS: dict[str, tuple[str, ...]] = {
    **{stem.upper(): (stem,) for stem in _SAME_NAME},
    **{op: ("elementwise",) for op in ("ABS", "COS", "LOG", "LOGICAL_NOT", "RSQRT", "SIN", "SQRT", "SQUARE")},
    **{op: ("comparisons",) for op in ("EQUAL", "NOT_EQUAL", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL")},
    **{op: ("reduce", "reduce_common") for op in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_ALL")},
    **{op: ("pooling", "pooling_common") for op in ("AVERAGE_POOL_2D", "MAX_POOL_2D")},
    "ADD": ("add", "add_common"),
    "ARG_MAX": ("arg_min_max",), "ARG_MIN": ("arg_min_max",),
    "BATCH_MATMUL": ("batch_matmul", "batch_matmul_common"),
    "CONV_2D": ("conv", "conv_common"),
    "DEPTHWISE_CONV_2D": ("depthwise_conv", "depthwise_conv_common", "conv_common"),
    "DEQUANTIZE": ("dequantize", "dequantize_common"),
    "FULLY_CONNECTED": ("fully_connected", "fully_connected_common"),
    "HARD_SWISH": ("hard_swish", "hard_swish_common"),
    "L2_NORMALIZATION": ("l2norm",),
    "LEAKY_RELU": ("leaky_relu", "leaky_relu_common"),
    "LOGICAL_AND": ("logical", "logical_common"), "LOGICAL_OR": ("logical", "logical_common"),
    "LOGISTIC": ("logistic", "logistic_common"),
    "MAXIMUM": ("maximum_minimum",), "MINIMUM": ("maximum_minimum",),
    "MUL": ("mul", "mul_common"),
    "PAD": ("pad", "pad_common"), "PADV2": ("pad", "pad_common"),
    "PRELU": ("prelu", "prelu_common"),
    "QUANTIZE": ("quantize", "quantize_common"),
    "RELU": ("activations", "activations_common"), "RELU6": ("activations", "activations_common"),
    "RESHAPE": ("reshape", "reshape_common"),
    "RESIZE_BILINEAR": ("resize_bilinear",), "RESIZE_NEAREST_NEIGHBOR": ("resize_nearest_neighbor",),
    "REVERSE_V2": ("reverse",),
    "SELECT_V2": ("select",),
    "SOFTMAX": ("softmax", "softmax_common"),
    "STRIDED_SLICE": ("strided_slice", "strided_slice_common"),
    "SUB": ("sub", "sub_common"),
    "SVDF": ("svdf", "svdf_common"),
    "TRANSPOSE": ("transpose", "transpose_common"),
    "TRANSPOSE_CONV": ("transpose_conv",),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("unidirectional_sequence_lstm", "lstm_eval", "lstm_eval_common",
                                     "micro_tensor_utils", "fully_connected_common"),
    "CUSTOM:CIRCULAR_BUFFER": ("circular_buffer", "circular_buffer_common"),
    "CUSTOM:TFLite_Detection_PostProcess": ("detection_postprocess",),
    "CUSTOM:TFLM_DECODE": ("decode", "decode_state", "decode_state_huffman", "decode_state_lut",
                           "decode_state_prune"),
    "CUSTOM:ethos-u": ("ethosu",),
}

# The kernels with a CMSIS-NN version (kernels/cmsis_nn/<stem>.cc), and the CMSIS-NN Source/ folders
# whose functions each calls; NNSupportFunctions (the shared inner loops) goes with any of them.
CMSIS_NN_KERNELS: dict[str, tuple[str, ...]] = {
    "add": ("BasicMathFunctions",), "mul": ("BasicMathFunctions",), "maximum_minimum": ("BasicMathFunctions",),
    "batch_matmul": ("FullyConnectedFunctions",),
    # On MVE cores the depthwise wrapper turns a one-input-channel depthwise into a convolution
    # through arm_transpose_s8.
    "conv": ("ConvolutionFunctions",), "depthwise_conv": ("ConvolutionFunctions", "TransposeFunctions"),
    "transpose_conv": ("ConvolutionFunctions",),
    "fully_connected": ("ConvolutionFunctions", "FullyConnectedFunctions"),
    "pad": ("PadFunctions",), "pooling": ("PoolingFunctions",), "softmax": ("SoftmaxFunctions",),
    "svdf": ("FullyConnectedFunctions", "SVDFunctions"), "transpose": ("TransposeFunctions",),
    "unidirectional_sequence_lstm": ("FullyConnectedFunctions", "LSTMFunctions"),
}
CMSIS_NN_SUPPORT = "NNSupportFunctions"

# TFLM's audio front end ops (signal/): the kernel and the signal/src files it includes.
_SIGNAL = "signal/micro/kernels"
SIGNAL_OPS: dict[str, tuple[str, ...]] = {
    "CUSTOM:SignalDelay": (f"{_SIGNAL}/delay.cc", "signal/src/circular_buffer.cc"),
    "CUSTOM:SignalEnergy": (f"{_SIGNAL}/energy.cc", "signal/src/energy.cc"),
    "CUSTOM:SignalFftAutoScale": (f"{_SIGNAL}/fft_auto_scale_kernel.cc", f"{_SIGNAL}/fft_auto_scale_common.cc",
                                  "signal/src/fft_auto_scale.cc", "signal/src/max_abs.cc", "signal/src/msb_32.cc"),
    "CUSTOM:SignalFilterBank": (f"{_SIGNAL}/filter_bank.cc", "signal/src/filter_bank.cc"),
    "CUSTOM:SignalFilterBankLog": (f"{_SIGNAL}/filter_bank_log.cc", "signal/src/filter_bank_log.cc",
                                   "signal/src/log.cc", "signal/src/msb_32.cc"),
    "CUSTOM:SignalFilterBankSpectralSubtraction": (f"{_SIGNAL}/filter_bank_spectral_subtraction.cc",
                                                   "signal/src/filter_bank_spectral_subtraction.cc"),
    "CUSTOM:SignalFilterBankSquareRoot": (f"{_SIGNAL}/filter_bank_square_root.cc",
                                          f"{_SIGNAL}/filter_bank_square_root_common.cc",
                                          "signal/src/filter_bank_square_root.cc", "signal/src/square_root_64.cc",
                                          "signal/src/square_root_32.cc", "signal/src/msb_64.cc",
                                          "signal/src/msb_32.cc"),
    "CUSTOM:SignalFramer": (f"{_SIGNAL}/framer.cc", "signal/src/circular_buffer.cc"),
    "CUSTOM:SignalIrfft": (f"{_SIGNAL}/irfft.cc", "signal/src/irfft_float.cc", "signal/src/irfft_int16.cc",
                           "signal/src/irfft_int32.cc", "signal/src/kiss_fft_wrappers/kiss_fft_float.cc",
                           "signal/src/kiss_fft_wrappers/kiss_fft_int16.cc",
                           "signal/src/kiss_fft_wrappers/kiss_fft_int32.cc"),
    "CUSTOM:SignalOverlapAdd": (f"{_SIGNAL}/overlap_add.cc", "signal/src/overlap_add.cc"),
    "CUSTOM:SignalPCAN": (f"{_SIGNAL}/pcan.cc", "signal/src/pcan_argc_fixed.cc", "signal/src/msb_32.cc"),
    "CUSTOM:SignalRfft": (f"{_SIGNAL}/rfft.cc", "signal/src/rfft_float.cc", "signal/src/rfft_int16.cc",
                          "signal/src/rfft_int32.cc", "signal/src/kiss_fft_wrappers/kiss_fft_float.cc",
                          "signal/src/kiss_fft_wrappers/kiss_fft_int16.cc",
                          "signal/src/kiss_fft_wrappers/kiss_fft_int32.cc"),
    "CUSTOM:SignalStacker": (f"{_SIGNAL}/stacker.cc", "signal/src/circular_buffer.cc"),
    "CUSTOM:SignalWindow": (f"{_SIGNAL}/window.cc", "signal/src/window.cc"),
}

# The CMSIS device header (Cortex_DFP Device/<name>/Include/<name>.h) per core, for TFLM's
# CMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE.
CMSIS_DEVICES = {"cortex-m0": "ARMCM0", "cortex-m0plus": "ARMCM0plus", "cortex-m3": "ARMCM3",
                 "cortex-m4": "ARMCM4", "cortex-m7": "ARMCM7", "cortex-m23": "ARMCM23", "cortex-m33": "ARMCM33",
                 "cortex-m55": "ARMCM55", "cortex-m85": "ARMCM85"}


@dataclass(frozen=True)
class KernelSources:
    """What to compile for a model's operators, each file with the ops that need it."""

    files: dict[str, tuple[str, ...]]  # path in the tree -> ops needing it ("all" for the shared helpers)
    cmsis_nn_dirs: tuple[str, ...]     # CMSIS-NN Source/ folders compiled whole

    @property
    def paths(self) -> list[str]:
        return list(self.files)


def _kernel_path(stem: str) -> str:
    return f"{KERNELS}/cmsis_nn/{stem}.cc" if stem in CMSIS_NN_KERNELS else f"{KERNELS}/{stem}.cc"


def kernel_sources(op_names: Iterable[str]) -> KernelSources:
    """The kernel files (sorted, each once) and CMSIS-NN folders for `op_names` (edgeq.graph names).
    An op without an entry is a BadInput: TFLM may run it, but edgeq does not know its files."""
    needs: dict[str, list[str]] = {_kernel_path(stem): ["all"] for stem in ALWAYS_KERNELS}
    dirs: set[str] = set()
    for op in dict.fromkeys(op_names):
        if op in SIGNAL_OPS:
            paths = list(SIGNAL_OPS[op])
        elif op in OP_KERNELS:
            paths = [_kernel_path(stem) for stem in OP_KERNELS[op]]
            for stem in OP_KERNELS[op]:
                dirs.update(CMSIS_NN_KERNELS.get(stem, ()))
        else:
            raise BadInput(f"op '{op}': edgeq does not know which TFLM kernel files implement it, so it "
                           "cannot build TFLM firmware for this model (add it to edgeq/codegen/tflm_sources.py)")
        for path in paths:
            needs.setdefault(path, []).append(op)
    if dirs:
        dirs.add(CMSIS_NN_SUPPORT)
    return KernelSources(files={path: tuple(dict.fromkeys(needs[path])) for path in sorted(needs)},
                         cmsis_nn_dirs=tuple(f"{CMSIS_NN_SOURCE}/{d}" for d in sorted(dirs)))


def cmsis_device(cpu: str) -> str:
    try:
        return CMSIS_DEVICES[{"cortex-m0+": "cortex-m0plus"}.get(cpu.lower(), cpu.lower())]
    except KeyError:
        raise BadInput(f"core {cpu!r} has no CMSIS device header in TFLM's tree; known: "
                       f"{', '.join(CMSIS_DEVICES)}") from None
