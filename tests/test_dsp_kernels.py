"""The int8 kernels' DSP path (SXTB16/SMLAD, on the Cortex-M4, M7 and M33) and MVE path (Helium, on
the Cortex-M55) against their portable path, bit for bit, kernel by kernel.

One C program (tests/c/dsp/main.c and a cases.c generated here from seeded random shapes: odd
channel counts, depths that are not multiples of 4, padding, strides, dilations, depth
multipliers, the in-place and row-buffered variants run in place) runs every case and prints its
output bytes. It is built for the host with gcc (the portable path, which the model tests hold to
TFLM), and for each emulated board with arm-none-eabi-gcc, and run in qemu-system-arm; every
board's lines must equal the host's. The M3 (an385) builds the portable path, the others the DSP
path and the M55 (an547) the MVE path, which the test checks from the compiler's predefined macros;
the M55's cases hold the same values, its blocked filters in the MVE layout (16-byte steps).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from edgeq.aot import arith
from edgeq.aot.lifetimes import depthwise_plane_bytes, depthwise_ring_rows, depthwise_rows_scratch_bytes
from edgeq.aot.lower_elementwise import bounded_add
from edgeq.aot.lowering import DSP_BLOCK, MVE_BLOCK, block_filter, pair_nibbles, widen_filter
from edgeq.boards import board_params_for
from edgeq.codegen.board import compile_flags, link_flags, render_board
from edgeq.profiles import get_profile
from edgeq.resources import RUNTIME_DIR

MAIN_C = Path(__file__).parent / "c" / "dsp" / "main.c"
STRICT_C = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Os"]
# each board: the SIMD its compiler targets (the predefined macro) and the blocked filters' step
BOARDS = {"qemu-mps2-an385": (None, DSP_BLOCK), "qemu-mps2-an386": ("__ARM_FEATURE_DSP", DSP_BLOCK),
          "qemu-mps2-an500": ("__ARM_FEATURE_DSP", DSP_BLOCK), "qemu-mps2-an505": ("__ARM_FEATURE_DSP", DSP_BLOCK),
          "qemu-mps3-an547": ("__ARM_FEATURE_MVE", MVE_BLOCK)}
KERNELS = ("eq_add_s8", "eq_max_pool_s8", "eq_avg_pool_s8", "eq_conv_s8", "eq_conv_rows_s8", "eq_conv_1x1_in_place_s8", "eq_conv_add_s8",
           "eq_fully_connected_s8",
           "eq_depthwise_conv_s8", "eq_depthwise_conv_rows_s8", "eq_depthwise_conv_in_place_s8",
           "eq_depthwise_conv_strided_s8",
           "eq_conv_1x1_in_place_wide_s8", "eq_fully_connected_wide_s8", "eq_conv_wide_s8", "eq_conv_rows_wide_s8",
           "eq_conv_add_wide_s8", "eq_conv_paired_s4", "eq_fully_connected_paired_s4")
WIDE = KERNELS[-7:-2]  # their filter is widened (eq_types.h), not blocked
PAIRED = KERNELS[-2:]  # int4 weights in the paired layout (eq_matvec_paired_s4.h)
TIMEOUT_S = 60

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
needs_arm = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm")


# ---- cases ---------------------------------------------------------------------------------------------

def _c_array(ctype: str, name: str, values, const: bool = True) -> str:
    values = [int(v) for v in np.asarray(values).reshape(-1)] or [0]
    body = ", ".join(str(v) for v in values)
    return f"static {'const ' if const else ''}{ctype} {name}[{len(values)}] = {{{body}}};"


@dataclass
class Case:
    name: str
    decls: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)


def _out_size(size: int, k: int, stride: int, dilation: int, pad: int) -> int:
    return max(1, (size + 2 * pad - ((k - 1) * dilation + 1)) // stride + 1)


def _quant(rng, p: str, channels: int, macs: int, per_channel: bool, bias, weights) -> list[str]:
    """Random requantization; most cases also get the bounded form (arith.bounded_requant) when
    the case's bias and weights ([channels][taps]) allow it, the others only the general one."""
    count = channels if per_channel else 1
    mult = rng.integers(1 << 30, (1 << 31) - 1, count, endpoint=True)
    base = int(round(-6.3 - 0.5 * np.log2(max(1, macs))))
    shift = np.clip(base + rng.integers(-1, 1, count, endpoint=True), -31, 3)
    bounds = np.abs(np.asarray(bias)) + 128 * np.abs(np.asarray(weights)).sum(axis=1)
    fast = arith.bounded_requant([(int(m), int(s)) for m, s in zip(mult, shift)], bounds)
    bounded = "0"
    if fast is not None and rng.random() < 0.7:
        bounded = f"{p}_bounded"
        fast_decl = (f"static const eq_requant {bounded}[{len(fast)}] = {{"
                     + ", ".join(f"{{{m}, {r}, {s}}}" for m, r, s in fast) + "};")
    decls = [_c_array("int32_t", f"{p}_mult", mult), _c_array("int32_t", f"{p}_shift", shift)]
    decls += [fast_decl] if bounded != "0" else []
    return decls + [f"static const eq_quant_params {p}_quant = {{{p}_mult, {p}_shift, {int(per_channel)}, {bounded}}};"]


def _output_offset(rng) -> int:
    """Often 0: the generator folds the output offset into the bounded rounding term, and the
    DSP kernels have a loop for that."""
    return 0 if rng.random() < 0.3 else int(rng.integers(-128, 128))


def _activation(rng) -> tuple[int, int]:
    return [(-128, 127), (int(rng.integers(-128, 0)), 127), (-128, int(rng.integers(0, 127)))][int(rng.integers(3))]


def _filter_array(kernel: str, name: str, f, block: int) -> str:
    """A [units][depth] filter in the layout `kernel` takes: widened, paired int4 or blocked int8."""
    if kernel in WIDE:
        return _c_array("int32_t", name, widen_filter(f))
    if kernel in PAIRED:
        return _c_array("uint32_t", name, pair_nibbles(f, block))
    return _c_array("int8_t", name, block_filter(f, block))


def conv_case(rng, i: int, kernel: str, shape: dict | None = None, block: int = DSP_BLOCK) -> Case:
    """A random case of `kernel`; `shape` fixes any of n h w cin cout kh kw sh sw dh dw ph pw."""
    p = f"c{i}"
    one = kernel in ("eq_conv_1x1_in_place_s8", "eq_conv_1x1_in_place_wide_s8")
    n = 1 if kernel in ("eq_conv_rows_s8", "eq_conv_rows_wide_s8") or one else int(rng.integers(1, 3))
    h, w = (int(v) for v in rng.integers(1, 10, 2))
    cin = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 13, 16, 33]))
    cout = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 12, 16, 17]))
    kh, kw = (1, 1) if one else (int(v) for v in rng.integers(1, 5, 2))
    sh, sw = (1, 1) if one else (int(v) for v in rng.integers(1, 3, 2))
    dh, dw = (1, 1) if one or rng.random() < 0.6 else (int(v) for v in rng.integers(1, 3, 2))
    ph, pw = (0, 0) if one else (int(rng.integers(0, kh)), int(rng.integers(0, kw)))
    if shape:
        n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, ph, pw = (shape.get(k, v) for k, v in zip(
            "n h w cin cout kh kw sh sw dh dw ph pw".split(), (n, h, w, cin, cout, kh, kw, sh, sw, dh, dw, ph, pw)))
    oh, ow = (h, w) if one else (_out_size(h, kh, sh, dh, ph), _out_size(w, kw, sw, dw, pw))
    zp_in, zp_out = int(rng.integers(-128, 128)), _output_offset(rng)
    lo, hi = _activation(rng)
    x = rng.integers(-128, 128, (n, h, w, cin))
    f = rng.integers(-8, 8, (cout, kh, kw, cin)) if kernel in PAIRED else rng.integers(-128, 128, (cout, kh, kw, cin))
    bias = rng.integers(-(1 << 16), 1 << 16, cout)
    case = Case(f"{kernel}:{n}x{h}x{w}x{cin}->{oh}x{ow}x{cout}:k{kh}x{kw}:s{sh}x{sw}:d{dh}x{dw}:p{ph}x{pw}")
    in_bytes, out_bytes = x.size, n * oh * ow * cout
    weights = _filter_array(kernel, f"{p}_filter", f.reshape(cout, -1), block)
    case.decls += [
        _c_array("int8_t", f"{p}_input", x), weights,
        _c_array("int32_t", f"{p}_bias", bias), *_quant(rng, p, cout, kh * kw * cin, bool(rng.random() < 0.8), bias, f.reshape(cout, -1)),
        f"static const eq_dims {p}_in = {{{n}, {h}, {w}, {cin}}};",
        f"static const eq_dims {p}_fd = {{{cout}, {kh}, {kw}, {cin}}};",
        f"static const eq_dims {p}_out = {{{n}, {oh}, {ow}, {cout}}};",
        f"static const eq_conv_params {p}_params = {{{-zp_in}, {zp_out}, {{{sw}, {sh}}}, {{{pw}, {ph}}}, "
        f"{{{dw}, {dh}}}, {{{lo}, {hi}}}}};",
    ]
    args = (f"&{p}_params, &{p}_quant, &{p}_in, {{input}}, &{p}_fd, {p}_filter, {p}_bias, &{p}_out, {{output}}")
    if one:  # in place: the output starts where the planner may put it, at or below the input
        below = max(0, n * h * w * (cout - cin))
        case.body += [f"memcpy(work + {below}, {p}_input, {in_bytes});",
                      "ctx.size = " + str(cin) + ";",
                      f"CALL({kernel}(&ctx, " + args.format(input=f"work + {below}", output="work") + "));",
                      f"EMIT(work, {out_bytes});"]
    elif kernel in ("eq_conv_add_s8", "eq_conv_add_wide_s8"):
        skip = rng.integers(-128, 128, out_bytes)
        case.decls += [_c_array("int8_t", f"{p}_skip", skip), *_add_params(rng, p)]
        # in place over the skip tensor, as the planner places it
        case.body += [f"memcpy(work, {p}_skip, {out_bytes});",
                      f"CALL({kernel}(0, &{p}_params, &{p}_quant, &{p}_add, &{p}_in, {p}_input, &{p}_fd, "
                      f"{p}_filter, {p}_bias, work, &{p}_out, work));",
                      f"EMIT(work, {out_bytes});"]
    else:
        ctx = "&ctx" if kernel in ("eq_conv_rows_s8", "eq_conv_rows_wide_s8") else "0"
        case.body += [f"ctx.size = {ow * cout};",
                      f"CALL({kernel}({ctx}, " + args.format(input=f"{p}_input", output="work") + "));",
                      f"EMIT(work, {out_bytes});"]
    return case


def _add_params(rng, p: str) -> list[str]:
    """An int8 ADD's parameters, their bounded form in half the cases."""
    off1, off2, off_out = (int(v) for v in rng.integers(-128, 128, 3))
    lo, hi = _activation(rng)
    bounded, decls = "0", []
    if rng.random() < 0.5:
        bounded = f"{p}_add_bounded"
        fast = bounded_add(20, 127, (off1, (1073741824, -1)), (off2, (1518500250, -2)), (1431655765, -19))
        decls.append(f"static const eq_requant {bounded}[3] = {{" + ", ".join(f"{{{m}, {r}, {s}}}" for m, r, s in fast)
                     + "};")
    return decls + [f"static const eq_add_params {p}_add = {{{off1}, {off2}, {off_out}, 20, 1073741824, -1, "
                    f"1518500250, -2, 1431655765, -19, {{{lo}, {hi}}}, {bounded}}};"]


def add_case(rng, i: int) -> Case:
    """ADD of two [n][h][w][c] tensors, the second whole, broadcast over h and w, or a scalar."""
    p = f"c{i}"
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6))
    c = int(rng.choice([1, 3, 4, 5, 8, 13, 16, 33]))
    kind = ("whole", "channels", "scalar")[int(rng.integers(3))]
    shape2 = {"whole": (n, h, w, c), "channels": (1, 1, 1, c), "scalar": (1, 1, 1, 1)}[kind]
    strides2 = {"whole": (h * w * c, w * c, c, 1), "channels": (0, 0, 0, 1), "scalar": (0, 0, 0, 0)}[kind]
    case = Case(f"eq_add_s8:{n}x{h}x{w}x{c}+{kind}")
    case.decls += [_c_array("int8_t", f"{p}_x", rng.integers(-128, 128, (n, h, w, c))),
                   _c_array("int8_t", f"{p}_y", rng.integers(-128, 128, shape2)), *_add_params(rng, p),
                   f"static const eq_strides {p}_s1 = {{{h * w * c}, {w * c}, {c}, 1}};",
                   f"static const eq_strides {p}_s2 = {{{', '.join(map(str, strides2))}}};",
                   f"static const eq_dims {p}_out = {{{n}, {h}, {w}, {c}}};"]
    case.body += [f"CALL(eq_add_s8(0, &{p}_add, &{p}_s1, {p}_x, &{p}_s2, {p}_y, &{p}_out, work));",
                  f"EMIT(work, {n * h * w * c});"]
    return case


def pool_case(rng, i: int, kernel: str) -> Case:
    """MAX_POOL_2D or AVERAGE_POOL_2D over a random window, stride and padding."""
    p = f"c{i}"
    n, h, w = int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 9))
    c = int(rng.choice([1, 3, 4, 5, 8, 13, 16, 17, 33]))
    kh, kw = int(rng.integers(1, min(h, 3) + 1)), int(rng.integers(1, min(w, 3) + 1))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    oh, ow = _out_size(h, kh, sh, 1, ph), _out_size(w, kw, sw, 1, pw)
    lo, hi = _activation(rng)
    case = Case(f"{kernel}:{n}x{h}x{w}x{c}->{oh}x{ow}:k{kh}x{kw}:s{sh}x{sw}:p{ph}x{pw}")
    case.decls += [_c_array("int8_t", f"{p}_input", rng.integers(-128, 128, (n, h, w, c))),
                   f"static const eq_pool_params {p}_params = {{{{{sw}, {sh}}}, {{{pw}, {ph}}}, {{{kw}, {kh}}}, "
                   f"{{{lo}, {hi}}}}};",
                   f"static const eq_dims {p}_in = {{{n}, {h}, {w}, {c}}};",
                   f"static const eq_dims {p}_out = {{{n}, {oh}, {ow}, {c}}};"]
    case.body += [f"CALL({kernel}(0, &{p}_params, &{p}_in, {p}_input, &{p}_out, work));",
                  f"EMIT(work, {n * oh * ow * c});"]
    return case


def fc_case(rng, i: int, kernel: str, units: int | None = None, block: int = DSP_BLOCK) -> Case:
    p = f"c{i}"
    batches, depth = int(rng.integers(1, 4)), int(rng.choice([1, 2, 3, 4, 5, 7, 8, 15, 16, 33, 64, 70]))
    units = units or int(rng.choice([1, 2, 3, 4, 5, 7, 8, 10, 13]))
    lo, hi = _activation(rng)
    x = rng.integers(-128, 128, (batches, depth))
    f = rng.integers(-8, 8, (units, depth)) if kernel in PAIRED else rng.integers(-128, 128, (units, depth))
    bias = rng.integers(-(1 << 16), 1 << 16, units)
    case = Case(f"{kernel}:{batches}x{depth}->{units}")
    weights = _filter_array(kernel, f"{p}_filter", f, block)
    case.decls += [
        _c_array("int8_t", f"{p}_input", x), weights,
        _c_array("int32_t", f"{p}_bias", bias),
        *_quant(rng, p, units, depth, bool(rng.random() < 0.5), bias, f),
        f"static const eq_dims {p}_in = {{{batches}, 1, 1, {depth}}};",
        f"static const eq_dims {p}_fd = {{{units}, 1, 1, {depth}}};",
        f"static const eq_dims {p}_out = {{{batches}, 1, 1, {units}}};",
        f"static const eq_fc_params {p}_params = {{{int(rng.integers(-128, 128))}, {_output_offset(rng)}, "
        f"{{{lo}, {hi}}}}};",
    ]
    case.body += [f"CALL({kernel}(0, &{p}_params, &{p}_quant, &{p}_in, {p}_input, &{p}_fd, "
                  f"{p}_filter, {p}_bias, &{p}_out, work));",
                  f"EMIT(work, {batches * units});"]
    return case


def depthwise_case(rng, i: int, kernel: str, shape: dict | None = None) -> Case:
    """A random case of `kernel`; `shape` fixes any of n h w cin mult kh kw sh sw dh dw ph pw."""
    p = f"c{i}"
    in_place = kernel in ("eq_depthwise_conv_in_place_s8", "eq_depthwise_conv_strided_s8")
    n = 1 if kernel == "eq_depthwise_conv_rows_s8" else int(rng.integers(1, 3))
    h, w = (int(v) for v in rng.integers(1, 10, 2))
    cin = int(rng.choice([1, 2, 3, 4, 5, 7, 8, 11, 16, 19]))
    mult = 1 if in_place or rng.random() < 0.7 else int(rng.integers(2, 4))
    cout = cin * mult
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 3, 2))
    dh, dw = (1, 1) if rng.random() < 0.7 else (int(v) for v in rng.integers(1, 3, 2))
    ph, pw = int(rng.integers(0, kh)), int(rng.integers(0, kw))
    if shape:
        n, h, w, cin, mult, kh, kw, sh, sw, dh, dw, ph, pw = (shape.get(k, v) for k, v in zip(
            "n h w cin mult kh kw sh sw dh dw ph pw".split(), (n, h, w, cin, mult, kh, kw, sh, sw, dh, dw, ph, pw)))
        cout = cin * mult
    oh, ow = _out_size(h, kh, sh, dh, ph), _out_size(w, kw, sw, dw, pw)
    if in_place and oh * ow > h * w:
        sh = sw = 1
        ph, pw = (kh - 1) // 2, (kw - 1) // 2
        oh, ow = _out_size(h, kh, 1, dh, ph), _out_size(w, kw, 1, dw, pw)
    zp_in, zp_out = int(rng.integers(-128, 128)), _output_offset(rng)
    lo, hi = _activation(rng)
    x = rng.integers(-128, 128, (n, h, w, cin))
    f = rng.integers(-128, 128, (1, kh, kw, cout))
    bias = rng.integers(-(1 << 14), 1 << 14, cout)
    case = Case(f"{kernel}:{n}x{h}x{w}x{cin}->{oh}x{ow}x{cout}:k{kh}x{kw}:s{sh}x{sw}:d{dh}x{dw}:p{ph}x{pw}")
    out_bytes = n * oh * ow * cout
    case.decls += [
        _c_array("int8_t", f"{p}_input", x), _c_array("int8_t", f"{p}_filter", f),
        _c_array("int32_t", f"{p}_bias", bias),
        *_quant(rng, p, cout, kh * kw, bool(rng.random() < 0.8), bias, f.reshape(-1, cout).T),
        f"static const eq_dims {p}_in = {{{n}, {h}, {w}, {cin}}};",
        f"static const eq_dims {p}_fd = {{1, {kh}, {kw}, {cout}}};",
        f"static const eq_dims {p}_out = {{{n}, {oh}, {ow}, {cout}}};",
        f"static const eq_dw_conv_params {p}_params = {{{-zp_in}, {zp_out}, {mult}, {{{sw}, {sh}}}, {{{pw}, {ph}}}, "
        f"{{{dw}, {dh}}}, {{{lo}, {hi}}}}};",
    ]
    options = SimpleNamespace(strideH=sh, strideW=sw, dilationHFactor=dh, dilationWFactor=dw)
    scratch = {"eq_depthwise_conv_s8": cout * 4,
               "eq_depthwise_conv_rows_s8": depthwise_rows_scratch_bytes(ow, cin, cout, options, kh, kw),
               "eq_depthwise_conv_in_place_s8": depthwise_plane_bytes(oh, ow, options, kh, kw),
               "eq_depthwise_conv_strided_s8": depthwise_ring_rows((n, h, w, cin), (n, oh, ow, cout), sh, ph) * ow * cout,
               }[kernel]
    source = "work" if in_place else f"{p}_input"
    case.body += ([f"memcpy(work, {p}_input, {x.size});"] if in_place else []) + [
        f"ctx.size = {scratch};",
        f"CALL({kernel}(&ctx, &{p}_params, &{p}_quant, &{p}_in, {source}, &{p}_fd, {p}_filter, {p}_bias, "
        f"&{p}_out, work));",
        f"EMIT(work, {out_bytes});"]
    return case


def make_cases(seed: int = 10, per_kernel: int = 12, block: int = DSP_BLOCK) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases: list[Case] = []
    for kernel in KERNELS:
        for _ in range(per_kernel):
            i = len(cases)
            if kernel == "eq_add_s8":
                cases.append(add_case(rng, i))
            elif kernel.endswith("_pool_s8"):
                cases.append(pool_case(rng, i, kernel))
            elif kernel.startswith("eq_fully_connected"):
                cases.append(fc_case(rng, i, kernel, block=block))
            elif kernel.startswith("eq_depthwise"):
                cases.append(depthwise_case(rng, i, kernel))
            else:
                cases.append(conv_case(rng, i, kernel, block=block))
    # windows longer than the conv kernels' gather buffer (1024 bytes), gathered piece by piece
    for kernel in ("eq_conv_s8", "eq_conv_add_s8"):
        cases.append(conv_case(rng, len(cases), kernel, dict(h=5, w=4, cin=72, cout=6, kh=4, kw=4, sh=1, sw=1,
                                                             dh=1, dw=1, ph=1, pw=2), block))
    # more units than the DSP kernels' accumulator run (64), requantized run by run
    cases.append(fc_case(rng, len(cases), "eq_fully_connected_wide_s8", units=70, block=block))
    cases.append(fc_case(rng, len(cases), "eq_fully_connected_s8", units=70, block=block))
    cases.append(fc_case(rng, len(cases), "eq_fully_connected_paired_s4", units=70, block=block))
    for kernel in ("eq_conv_s8", "eq_conv_1x1_in_place_s8", "eq_conv_paired_s4"):
        cases.append(conv_case(rng, len(cases), kernel, dict(cout=70), block))
    return cases


def render_cases(cases: list[Case]) -> dict[str, str]:
    header = ("#ifndef CASES_H\n#define CASES_H\n#include <stdint.h>\n"
              "typedef void (*eq_emit_fn)(const char *name, int status, uint64_t instructions, const int8_t *out,"
              " int32_t size);\n"
              "void eq_run_cases(eq_emit_fn emit, uint64_t (*cycles)(void));\n#endif\n")
    lines = ["/* Generated by tests/test_dsp_kernels.py. */", "#include <string.h>", '#include "eq_kernels.h"',
             '#include "cases.h"', "",
             "/* Times one kernel call; `status` and `spent` are eq_run_cases' locals. */",
             "#define CALL(call) do { start = cycles(); status = (call); spent = cycles() - start; } while (0)",
             "#define EMIT(buffer, size) emit(name, (int)status, spent, (buffer), (size))", "",
             "static int8_t work[16384];", "static int32_t scratch[4096];"]
    for case in cases:
        lines += case.decls
    lines += ["", "void eq_run_cases(eq_emit_fn emit, uint64_t (*cycles)(void))", "{",
              "    eq_context ctx;", "    eq_status status = EQ_OK;", "    uint64_t start, spent = 0;",
              "    const char *name;", "    ctx.buf = scratch;", "    ctx.size = (int32_t)sizeof(scratch);", "    (void)ctx;"]
    for case in cases:
        lines += [f'    name = "{case.name}";'] + [f"    {s}" for s in case.body]
    lines += ["}"]
    return {"cases.c": "\n".join(lines) + "\n", "cases.h": header}


# ---- building and running --------------------------------------------------------------------------

def _sources(directory: Path) -> list[str]:
    return [str(directory / "cases.c"), str(MAIN_C)] + [str(RUNTIME_DIR / f"{k}.c") for k in KERNELS]


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def _parse(text: str) -> list[tuple[str, str, int, str]]:
    body = text.split("BEGIN\n", 1)[1].split("END\n", 1)[0]
    return [(name, status, int(count), data) for name, status, count, *rest in
            (line.split(" ") for line in body.splitlines()) for data in [rest[0] if rest else ""]]


def run_host(directory: Path, cases: dict[str, str]) -> list[tuple[str, str, int, str]]:
    params = board_params_for(get_profile("host"))
    d = _write(directory, {**cases, **render_board(params)})
    exe = d / "cases"
    subprocess.run(["gcc", *STRICT_C, *compile_flags(params), f"-I{d}", f"-I{RUNTIME_DIR}", *_sources(d),
                    str(d / "eq_board.c"), *link_flags(params, ""), "-o", str(exe)],
                   check=True, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = subprocess.run([str(exe)], stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT_S).stdout
    return _parse(out.decode())


def build_arm(profile_name: str, directory: Path, cases: dict[str, str]) -> tuple[Path, str]:
    params = board_params_for(get_profile(profile_name))
    d = _write(directory, {**cases, **render_board(params)})
    elf = d / "cases.elf"
    result = subprocess.run(["arm-none-eabi-gcc", *STRICT_C, *compile_flags(params), f"-I{d}", f"-I{RUNTIME_DIR}",
                             *_sources(d), str(d / "startup.c"), str(d / "eq_board.c"),
                             *link_flags(params, str(d / "linker.ld")), "-o", str(elf)],
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    macros = subprocess.run(["arm-none-eabi-gcc", *compile_flags(params), "-dM", "-E", "-x", "c", "/dev/null"],
                            capture_output=True, text=True, check=True).stdout
    return elf, macros


def run_qemu(machine: str, elf: Path) -> str:
    """The program's UART0 output up to its END line (QEMU's serial on stdout, instructions counted)."""
    process = subprocess.Popen(["qemu-system-arm", "-M", machine, "-icount", "shift=0", "-display", "none",
                                "-monitor", "none", "-serial", "stdio", "-kernel", str(elf)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received = b""
    try:
        while b"END\n" not in received:
            chunk = process.stdout.read1(65536)
            if not chunk:
                break
            received += chunk
    finally:
        process.kill()
        process.wait(timeout=10)
    assert b"END\n" in received, f"{machine}: no END line; got {received[-300:]!r}"
    return received.decode()


@pytest.fixture(scope="module")
def cases() -> dict[str, str]:
    return render_cases(make_cases())


@pytest.fixture(scope="module")
def cases_by_block(cases) -> dict[int, dict[str, str]]:
    """The same cases with their blocked filters in each board's layout."""
    return {DSP_BLOCK: cases, MVE_BLOCK: render_cases(make_cases(block=MVE_BLOCK))}


@pytest.fixture(scope="module")
def host_results(cases, tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs the host gcc")
    return run_host(tmp_path_factory.mktemp("dsp-host"), cases)


@needs_gcc
def test_every_kernel_variant_runs_every_case_on_the_host(host_results):
    assert len(host_results) == len(KERNELS) * 12 + 8
    assert {r[1] for r in host_results} == {"ok"}
    assert {r[0].split(":")[0] for r in host_results} == set(KERNELS)
    # the outputs are not all clamped: the cases exercise the requantization, not just the clamp
    values = np.frombuffer(bytes.fromhex("".join(r[3] for r in host_results)), np.int8)
    assert len(np.unique(values)) > 200


@pytest.mark.emulator
@needs_gcc
@needs_arm
@pytest.mark.parametrize("profile_name", list(BOARDS))
def test_kernels_on_the_emulated_board_match_the_portable_path_bit_for_bit(profile_name, cases_by_block,
                                                                           host_results, tmp_path):
    simd, block = BOARDS[profile_name]
    elf, macros = build_arm(profile_name, tmp_path, cases_by_block[block])
    assert ("#define __ARM_FEATURE_DSP 1" in macros) == (simd is not None)
    assert ("#define __ARM_FEATURE_MVE" in macros) == (simd == "__ARM_FEATURE_MVE")
    board = _parse(run_qemu(board_params_for(get_profile(profile_name)).board, elf))
    assert [r[0] for r in board] == [r[0] for r in host_results]
    for (name, status, _, data), (_, host_status, _, host_data) in zip(board, host_results):
        assert (status, data) == (host_status, host_data), f"{profile_name}: {name}"


def test_mve_blocked_filters_step_16_bytes_a_row_each_row_zero_padded_to_whole_steps():
    f = np.arange(5 * 20).reshape(5, 20) % 256 - 128
    blocked = block_filter(f, MVE_BLOCK)
    padded = np.pad(f, ((0, 0), (0, 12)))
    assert len(blocked) == 5 * 32
    # a group's step i: 16 bytes of each of its four rows in turn; the fifth row, padded, after
    assert list(blocked[:64]) == [v for row in padded[:4, :16] for v in row]
    assert list(blocked[64:128]) == [v for row in padded[:4, 16:] for v in row]
    assert list(blocked[128:]) == list(padded[4])


def test_mve_paired_int4_steps_hold_32_weights_a_row_in_16_bytes_rows_four_by_four():
    f = np.arange(5 * 40).reshape(5, 40) % 16 - 8
    data = pair_nibbles(f, MVE_BLOCK).view(np.uint8)
    padded = np.zeros((8, 64), np.int64)
    padded[:5, :40] = f
    assert len(data) == 8 * 2 * 16  # rows to a multiple of four, each to whole steps of 32: half a byte a weight
    low = ((data & 0xF).astype(np.int64) ^ 8) - 8
    high = ((data >> 4).astype(np.int64) ^ 8) - 8
    # group 0's step 1 holds weights 32..47 (low nibbles) and 48..63 (high) of rows 0..3 in turn
    assert [list(low[64 + 16 * r:80 + 16 * r]) for r in range(4)] == [list(padded[r, 32:48]) for r in range(4)]
    assert [list(high[64 + 16 * r:80 + 16 * r]) for r in range(4)] == [list(padded[r, 48:64]) for r in range(4)]
    # group 1: row 4, then the padding rows 5..7, zero, in each step
    assert list(low[128:144]) == list(padded[4, :16]) and list(high[192:208]) == list(padded[4, 48:64])
    assert not data[144:192].any() and not data[208:256].any()


def test_an_mve_core_gets_the_mve_layout_and_no_widened_weights(small_cnn_int8):
    from edgeq.runtimes import get_runtime

    compiled, _ = get_runtime("edgeq-c").compile(get_profile("qemu-mps3-an547"), small_cnn_int8)
    assert compiled.mve and compiled.widen == "never" and not any("wide" in k for k in compiled.kernels)


def test_widened_weights_are_taken_only_when_they_fit_the_devices_flash(small_cnn_int8):
    from edgeq.aot import WIDENED_CODE_ALLOWANCE_BYTES, compile_model

    roomy = compile_model(small_cnn_int8, dsp=True, flash_bytes=4 << 20)
    int8 = compile_model(small_cnn_int8, dsp=True, widen="never")
    tight = compile_model(small_cnn_int8, dsp=True,
                          flash_bytes=roomy.const_bytes + WIDENED_CODE_ALLOWANCE_BYTES - 1)

    assert roomy.widen == "auto" and any("wide" in k for k in roomy.kernels) and roomy.const_bytes > int8.const_bytes
    assert tight.widen == "never" and tight.kernels == int8.kernels and tight.const_bytes == int8.const_bytes


def test_only_filters_used_many_times_an_inference_are_widened(small_cnn_int8):
    from edgeq.aot import compile_model
    from edgeq.aot.lowering import WIDEN_MIN_USES

    dsp = compile_model(small_cnn_int8, dsp=True, flash_bytes=4 << 20)

    # the CONV_2D's filter serves 8 x 8 output pixels; the FULLY_CONNECTED's each weight once
    assert 8 * 8 >= WIDEN_MIN_USES > 1
    assert any(k.startswith("eq_conv") and "wide" in k for k in dsp.kernels)
    assert "eq_fully_connected_s8" in dsp.kernels and "eq_fully_connected_wide_s8" not in dsp.kernels


@pytest.mark.parametrize("optimize, fully_connected", [("-Os", "eq_fully_connected_s8"),
                                                       ("-O3", "eq_fully_connected_wide_s8")])
def test_the_profiles_optimisation_level_says_whether_speed_or_flash_comes_first(small_cnn_int8, optimize,
                                                                                   fully_connected):
    import dataclasses

    from edgeq.runtimes import get_runtime

    profile = get_profile("qemu-mps2-an386")
    profile = dataclasses.replace(profile, toolchain=dataclasses.replace(profile.toolchain, optimize=optimize))
    compiled, _ = get_runtime("edgeq-c").compile(profile, small_cnn_int8)

    assert fully_connected in compiled.kernels
    assert any("wide" in k for k in compiled.kernels) == (optimize == "-O3")
