"""Choosing the runtime and mode for a device, and refusing what its runtime cannot run."""

from __future__ import annotations

import pytest

from edgeq.errors import BadInput
from edgeq.plan import plan
from edgeq.profiles import get_profile
from edgeq.runtimes import get_runtime

pytestmark = pytest.mark.usefixtures("no_processes")  # a pure stage: no program, fork or port


def test_microcontroller_without_a_mode_gets_full_int8():
    chosen = plan(get_profile("nucleo-l4r5zi"), runtime="tflm")
    assert (chosen.runtime, chosen.mode) == ("tflm", "int8")


def test_phone_runs_litert():
    assert plan(get_profile("pixel-8")).runtime == "litert"


def test_tflm_refuses_dynamic_range_models_before_conversion():
    with pytest.raises(BadInput, match="mode dynamic-int8 cannot run on nucleo-l4r5zi with runtime tflm: "
                                       "TFLM runs no dynamic-range"):
        plan(get_profile("nucleo-l4r5zi"), runtime="tflm", mode="dynamic-int8")


def test_tflm_refuses_fp16_weights():
    with pytest.raises(BadInput, match="TFLM runs no fp16 weights"):
        get_runtime("tflm").check_mode("fp16", get_profile("nucleo-l4r5zi"))


def test_litert_runs_every_mode():
    profile = get_profile("pixel-8")
    for mode in ("fp32", "fp16", "dynamic-int8", "int8", "int16x8"):
        get_runtime("litert").check_mode(mode, profile)


def test_a_runtime_the_profile_lacks_is_refused():
    with pytest.raises(BadInput, match="profile pixel-8 does not run 'tflm'"):
        plan(get_profile("pixel-8"), runtime="tflm")


def test_float_on_a_core_without_fpu_warns_that_it_will_be_slow():
    chosen = plan(get_profile("rpi-pico"), runtime="tflm", mode="fp32")
    assert chosen.warnings and "does not run fp32 well" in chosen.warnings[0]
