"""Stage 3, the quantization maths in numpy: the maps between real values and integers, the
observers that pick a tensor's range, and the error metrics.

The converter does the quantizing; edgeq's maths is checked against what it stores, and the
planner and the measurements use it to reason about ranges and errors.
"""

from edgeq.graph import pack_int4, unpack_int4
from edgeq.quant.maps import (
                              ROUNDING_MODES,
                              QuantParams,
                              asymmetric_params,
                              dequantize,
                              fake_quantize,
                              integer_range,
                              params_from_tensor,
                              per_channel_absmax,
                              quantize,
                              quantize_weights_per_channel,
                              round_half_away_from_zero,
                              storage_dtype,
                              symmetric_params,
)
from edgeq.quant.metrics import cosine_similarity, mse, sqnr_db
from edgeq.quant.observers import MinMaxObserver, MovingAverageMinMaxObserver, MseObserver, PercentileObserver

__all__ = [
    "ROUNDING_MODES", "QuantParams", "asymmetric_params", "cosine_similarity", "dequantize", "fake_quantize",
    "integer_range", "mse", "pack_int4", "params_from_tensor", "per_channel_absmax", "quantize",
    "quantize_weights_per_channel", "round_half_away_from_zero", "sqnr_db", "storage_dtype", "symmetric_params",
    "unpack_int4", "MinMaxObserver", "MovingAverageMinMaxObserver", "MseObserver", "PercentileObserver",
]
