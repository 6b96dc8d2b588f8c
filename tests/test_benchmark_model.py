"""Reading benchmark_model's output and the profile summary, on real outputs pasted verbatim.

Each sample is a contiguous excerpt of a real run, copied as published (tabs written as \\t); the comment above
each says where. No benchmark output is made up here; only the garbage tests feed text of their own.
"""

from __future__ import annotations

import pytest

from edgeq.errors import ToolFailed
from edgeq.measure.benchmark_model import OpRow, parse_benchmark_output, parse_op_profile

# ruitaodong/imx-benchmarks logs/deeplabv3-NPU.log (commit bf69b688), the whole file: TFLite benchmark_model with
# --enable_op_profiling on an i.MX NPU through the VX external delegate, graph partly delegated.
DEEPLAB_NPU = """STARTING!
Unconsumed cmdline flags: --external_delegate_path=/usr/lib/libvx_delegate.so
Log parameter values verbosely: [0]
Graph: [ssd_mobilenet_v1_quantized_300x300_coco14_sync_2018_07_18/model.tflite]
Enable op profiling: [1]
External delegate path: [/usr/lib/libvx_delegate.so]
Loaded model ssd_mobilenet_v1_quantized_300x300_coco14_sync_2018_07_18/model.tflite
Vx delegate: allowed_builtin_code set to 0.
Vx delegate: error_during_init set to 0.
Vx delegate: error_during_prepare set to 0.
Vx delegate: error_during_invoke set to 0.
EXTERNAL delegate created.
Going to apply 1 delegates one after another.
Explicitly applied EXTERNAL delegate, and the model graph will be partially executed by the delegate w/ 1 delegate kernels.
The input model file size (MB): 6.89901
Initialized session in 13.718ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=1 curr=8468241

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=77 first=12927 curr=12783 min=12745 max=12929 avg=12828.4 std=40

Inference timings in us: Init: 13718, First inference: 8468241, Warmup (avg): 8.46824e+06, Inference (avg): 12828.4
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Peak memory footprint (MB): init=8.33594 overall=50.3594
Profiling Info for Benchmark Initialization:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t ModifyGraphWithDelegate\t            0.831\t    1.592\t    0.820\t 93.341%\t 93.341%\t     0.000\t        2\tModifyGraphWithDelegate/0
\t         AllocateTensors\t            1.631\t    0.086\t    0.039\t  6.659%\t100.000%\t     0.000\t        3\tAllocateTensors/0

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t ModifyGraphWithDelegate\t            0.831\t    1.592\t    0.820\t 93.341%\t 93.341%\t     0.000\t        2\tModifyGraphWithDelegate/0
\t         AllocateTensors\t            1.631\t    0.086\t    0.039\t  6.659%\t100.000%\t     0.000\t        3\tAllocateTensors/0

Number of nodes executed: 2
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t ModifyGraphWithDelegate\t        1\t     1.640\t    93.341%\t    93.341%\t     0.000\t        2
\t         AllocateTensors\t        1\t     0.117\t     6.659%\t   100.000%\t     0.000\t        3

Timings (microseconds): count=1 curr=1757
Memory (bytes): count=0
2 nodes observed



Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Run Order ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t             Vx Delegate\t            0.015\t   10.932\t   10.871\t 85.072%\t 85.072%\t     0.000\t        1\t[Squeeze, convert_scores]:64
\tTFLite_Detection_PostProcess\t           10.888\t    1.932\t    1.908\t 14.928%\t100.000%\t     0.000\t        1\t[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, TFLite_Detection_PostProcess:2, TFLite_Detection_PostProcess:3]:63

============================== Top by Computation Time ==============================
\t             [node type]\t          [start]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t             Vx Delegate\t            0.015\t   10.932\t   10.871\t 85.072%\t 85.072%\t     0.000\t        1\t[Squeeze, convert_scores]:64
\tTFLite_Detection_PostProcess\t           10.888\t    1.932\t    1.908\t 14.928%\t100.000%\t     0.000\t        1\t[TFLite_Detection_PostProcess, TFLite_Detection_PostProcess:1, TFLite_Detection_PostProcess:2, TFLite_Detection_PostProcess:3]:63

Number of nodes executed: 2
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t             Vx Delegate\t        1\t    10.871\t    85.076%\t    85.076%\t     0.000\t        1
\tTFLite_Detection_PostProcess\t        1\t     1.907\t    14.924%\t   100.000%\t     0.000\t        1

Timings (microseconds): count=77 first=12864 curr=12739 min=12695 max=12888 avg=12779.1 std=39
Memory (bytes): count=0
2 nodes observed



"""

# ArmDeveloperEcosystem/arm-learning-paths content/learning-paths/mobile-graphics-and-gaming/litert-sme/4-benchmark.md
# (commit 278f5fb5), the first output block: LiteRT's CompiledModel benchmark_model (litert/tools) with
# --use_profiler=true, which prints a "BENCHMARK RESULTS" block and no "Inference timings in us" line.
LITERT_SME2 = """...
INFO: [litert/runtime/accelerators/auto_registration.cc:148] CPU accelerator registered.
INFO: [litert/runtime/compiled_model.cc:415] Flatbuffer model initialized directly from incoming litert model.
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 1 out of 1 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 3.27774
INFO: Initialized session in 4.478ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=1055 first=1033 curr=473 min=443 max=1033 avg=465.319 std=18 p5=459 median=463 p95=478

INFO: Running benchmark for at least 1000 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=2112 first=463 curr=459 min=442 max=979 avg=464.545 std=13 p5=460 median=462 p95=478

INFO: [./litert/tools/benchmark_litert_model.h:81] 
========== BENCHMARK RESULTS ==========
INFO: [./litert/tools/benchmark_litert_model.h:82] Model initialization: 4.48 ms
INFO: [./litert/tools/benchmark_litert_model.h:84] Warmup (first):       1.03 ms
INFO: [./litert/tools/benchmark_litert_model.h:86] Warmup (avg):         0.47 ms (1055 runs)
INFO: [./litert/tools/benchmark_litert_model.h:88] Inference (avg):      0.46 ms (2112 runs)
INFO: [./litert/tools/benchmark_litert_model.h:92] Inference (min):      0.44 ms
INFO: [./litert/tools/benchmark_litert_model.h:94] Inference (max):      0.98 ms
INFO: [./litert/tools/benchmark_litert_model.h:96] Inference (std):      0.01
INFO: [./litert/tools/benchmark_litert_model.h:103] Throughput:           525.55 MB/s
INFO: [./litert/tools/benchmark_litert_model.h:112] 
Memory Usage:
INFO: [./litert/tools/benchmark_litert_model.h:114] Init footprint:       8.94 MB
INFO: [./litert/tools/benchmark_litert_model.h:116] Overall footprint:    11.51 MB
INFO: [./litert/tools/benchmark_litert_model.h:123] Peak memory usage not available. (peak_mem_mb <= 0)
INFO: [./litert/tools/benchmark_litert_model.h:126] ======================================

INFO: [./litert/tools/benchmark_litert_model.h:179] 
============================== Run Order ==============================
\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t        LiteRT::Run[buffer registration]\t    0.020\t    0.014\t  3.309%\t  3.309%\t     0.000\t        1\tLiteRT::Run[buffer registration]/0
\t                         AllocateTensors\t    0.291\t    0.291\t  0.022%\t  3.331%\t   452.000\t        0\tAllocateTensors/0
\t                     Static Reshape (NC)\t    0.085\t    0.003\t  0.739%\t  4.070%\t     0.000\t        1\tDelegate/Static Reshape (NC):0
\t         Fully Connected (NC, PF32) GEMM\t    0.538\t    0.382\t 92.948%\t 97.018%\t     0.000\t        1\tDelegate/Fully Connected (NC, PF32) GEMM:1
\t                LiteRT::Run[Buffer sync]\t    0.013\t    0.012\t  2.982%\t100.000%\t     0.000\t        1\tLiteRT::Run[Buffer sync]/0

============================== Top by Computation Time ==============================
\t                             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]
\t         Fully Connected (NC, PF32) GEMM\t    0.538\t    0.382\t 92.948%\t 92.948%\t     0.000\t        1\tDelegate/Fully Connected (NC, PF32) GEMM:1
\t                         AllocateTensors\t    0.291\t    0.291\t  0.022%\t 92.970%\t   452.000\t        0\tAllocateTensors/0
\t        LiteRT::Run[buffer registration]\t    0.020\t    0.014\t  3.309%\t 96.279%\t     0.000\t        1\tLiteRT::Run[buffer registration]/0
\t                LiteRT::Run[Buffer sync]\t    0.013\t    0.012\t  2.982%\t 99.261%\t     0.000\t        1\tLiteRT::Run[Buffer sync]/0
\t                     Static Reshape (NC)\t    0.085\t    0.003\t  0.739%\t100.000%\t     0.000\t        1\tDelegate/Static Reshape (NC):0

Number of nodes executed: 5
============================== Summary by node type ==============================
\t                             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t         Fully Connected (NC, PF32) GEMM\t        1\t     0.382\t    93.171%\t    93.171%\t     0.000\t        1
\t        LiteRT::Run[buffer registration]\t        1\t     0.013\t     3.171%\t    96.341%\t     0.000\t        1
\t                LiteRT::Run[Buffer sync]\t        1\t     0.012\t     2.927%\t    99.268%\t     0.000\t        1
\t                     Static Reshape (NC)\t        1\t     0.003\t     0.732%\t   100.000%\t     0.000\t        1
\t                         AllocateTensors\t        1\t     0.000\t     0.000%\t   100.000%\t   452.000\t        0

Timings (microseconds): count=3166 first=947 curr=406 min=390 max=947 avg=411.071 std=14
Memory (bytes): count=0
5 nodes observed
"""

# tensorflow/tensorflow tensorflow/lite/tools/benchmark/README.md, "Profiling model operators": the end of the
# example output, from the node-type summary to the (older) "Average inference timings" line.
TF_README_PROFILE = """Number of nodes executed: 31
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t                 CONV_2D\t       15\t     1.406\t    89.270%\t    89.270%\t     0.000\t        0
\t       DEPTHWISE_CONV_2D\t       13\t     0.169\t    10.730%\t   100.000%\t     0.000\t        0
\t                 SOFTMAX\t        1\t     0.000\t     0.000%\t   100.000%\t     0.000\t        0
\t                 RESHAPE\t        1\t     0.000\t     0.000%\t   100.000%\t     0.000\t        0
\t         AVERAGE_POOL_2D\t        1\t     0.000\t     0.000%\t   100.000%\t     0.000\t        0

Timings (microseconds): count=50 first=79449 curr=81350 min=77385 max=88213 avg=79732 std=1929
Memory (bytes): count=0
31 nodes observed


Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""

# tensorflow/tensorflow issue #43541 (comment by yizhaoyanbo), from "STARTING!" to the timings line: the GPU
# delegate on an Android phone, before the op profile.
GPU_43541 = """STARTING!
Log parameter values verbosely: [0]
Min num runs: [50]
Num threads: [4]
Min warmup runs: [1]
Graph: [/data/local/tmp/tflite/denoising_32bit.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [4]
Use gpu: [1]
Loaded model /data/local/tmp/tflite/denoising_32bit.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite delegate for GPU.
INFO: Initialized OpenCL-based API.
INFO: Created 1 GPU delegate kernels.
Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
The input model file size (MB): 7.07479
Initialized session in 870.557ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=4 first=130565 curr=120829 min=117370 max=130565 avg=122373 std=4930

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=119212 curr=118055 min=113737 max=124776 avg=119375 std=1948

Inference timings in us: Init: 870557, First inference: 130565, Warmup (avg): 122373, Inference (avg): 119375
"""

# tensorflow/tensorflow issue #56301 (first post by francescoyou97): the Android benchmark app, read from
# `adb logcat` with its threadtime prefixes; NNAPI took part of the graph.
NNAPI_LOGCAT_56301 = """05-30 15:16:44.857  3380  3380 I tflite  : Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 44 delegate kernels.
05-30 15:16:44.858  3380  3380 I tflite  : The input model file size (MB): 0.113392
05-30 15:16:44.858  3380  3380 I tflite  : Initialized session in 126.059ms.
05-30 15:16:44.858  3380  3380 I tflite  : Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
05-30 15:16:45.362  3380  3380 I tflite  : count=40 first=32942 curr=12594 min=11340 max=32942 avg=12581.9 std=3331
05-30 15:16:45.362  3380  3380 I tflite  : Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
05-30 15:16:46.365  3380  3380 I tflite  : count=75 first=12840 curr=11853 min=11787 max=13649 avg=12167.6 std=325
05-30 15:16:46.366  3380  3380 I tflite  : Inference timings in us: Init: 126059, First inference: 32942, Warmup (avg): 12581.9, Inference (avg): 12167.6
05-30 15:16:46.366  3380  3380 I tflite  : Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
"""

# The same issue, further down the same post: the output as quoted there ends inside the initialisation profile.
NNAPI_LOGCAT_INIT_56301 = """05-30 13:04:39.021 25935 25935 I tflite  : Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
05-30 13:04:39.021 25935 25935 I tflite  : Memory footprint delta from the start of the tool (MB): init=2.03516 overall=2.03516
05-30 13:04:39.021 25935 25935 I tflite  : Profiling Info for Benchmark Initialization:
05-30 13:04:39.021 25935 25935 I tflite  : ============================== Run Order ==============================
05-30 13:04:39.021 25935 25935 I tflite  :                   [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB] [times called]   [Name]
05-30 13:04:39.021 25935 25935 I tflite  :       ModifyGraphWithDelegate           54.571          54.571        95.055%         95.055%          1132.000         1        ModifyGraphWithDelegate/0
05-30 13:04:39.021 25935 25935 I tflite  :               AllocateTensors            2.833           1.419         4.945%        100.000%             0.000         2        AllocateTensors/0
05-30 13:04:39.021 25935 25935 I tflite  :
"""

# google/XNNPACK issue #999 (comment by AIWintermuteAI), from the parameters to the memory line: a Raspberry Pi run.
XNNPACK_999 = """Log parameter values verbosely: [0]
Num threads: [4]
Graph: [yolo_best_recall_int8_static.tflite]
Enable op profiling: [1]
#threads used for CPU inference: [4]
Loaded model yolo_best_recall_int8_static.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 3.67827
Initialized session in 18.777ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=9 first=64791 curr=56295 min=54873 max=65831 avg=57758.2 std=4065

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=58154 curr=53809 min=53077 max=60727 avg=55043.2 std=1562

Inference timings in us: Init: 18777, First inference: 64791, Warmup (avg): 57758.2, Inference (avg): 55043.2
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=8.97656 overall=18.7227
"""

# tensorflow/tensorflow issue #62506 (first post by suyash-narain), the end of the quoted output: the Flex
# delegate failed in every warm-up run and the tool stopped before the timed runs.
FLEX_62506 = """> ERROR: Node number 1139 (TfLiteFlexDelegate) failed to prepare.
> ERROR: Delegate kernel was not initialized
> ERROR: Node number 1139 (TfLiteFlexDelegate) failed to prepare.
> INFO: count=113 first=216495 curr=60356 min=22 max=216495 avg=4851.66 std=26505
>
"""

# mozilla/DeepSpeech issue #2270 (comment by lissyx, 2019-07-25), as quoted: a 2019 benchmark_model with the
# "Average inference timings" line and a Run Order table that the comment cuts off in its fourth row.
DEEPSPEECH_2270 = """Average inference timings in us: Warmup: 27917.4, Init: 21528106, no stats: 23313.5
============================== Run Order ==============================
                     [node type]                  [start]         [first]        [avg ms]            [%]          [cdf%]          [mem KB]      [times called]  [Name]
                        DELEGATE                    0.000          21.227          21.287        91.329%         91.329%             0.000              1       [cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/BiasAdd]
                           SPLIT                   21.287           0.015           0.013         0.056%         91.385%             0.000              1       [cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/split, cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/split:1, cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/split:2, cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/split:3]
                             ADD                   21.300           0.021           0.022         0.093%         91.479%             0.000              1       [cudnn_lstm/rnn/multi_rnn_cell/cell_0/cudnn_compatible_lstm_cell/add]
                        LOGISTIC                   21.322           0.012           0.014
"""


def test_inference_timings_are_read_in_milliseconds():
    result = parse_benchmark_output(GPU_43541)
    assert result.init_ms == pytest.approx(870.557)
    assert result.first_ms == pytest.approx(130.565)
    assert result.warmup_avg_ms == pytest.approx(122.373)
    assert result.avg_ms == pytest.approx(119.375)


def test_timed_run_spread_comes_from_the_last_count_line_not_the_warm_up():
    result = parse_benchmark_output(GPU_43541)
    assert result.runs == 50
    assert (result.min_ms, result.max_ms, result.std_ms) == pytest.approx((113.737, 124.776, 1.948))


def test_profilers_own_timings_line_is_not_taken_for_the_timed_runs():
    # The op profile ends with "Timings (microseconds): count=77 .. min=12695 max=12888 .. std=39".
    result = parse_benchmark_output(DEEPLAB_NPU)
    assert result.runs == 77
    assert (result.min_ms, result.max_ms, result.std_ms) == pytest.approx((12.745, 12.929, 0.040))


def test_averages_printed_in_exponent_notation_are_read():
    result = parse_benchmark_output(DEEPLAB_NPU)  # "Warmup (avg): 8.46824e+06"
    assert result.warmup_avg_ms == pytest.approx(8468.24)
    assert result.first_ms == pytest.approx(8468.241)


def test_memory_footprint_delta_is_read_in_megabytes():
    result = parse_benchmark_output(XNNPACK_999)
    assert (result.memory_init_mb, result.memory_overall_mb) == pytest.approx((8.97656, 18.7227))


def test_peak_memory_is_none_without_periodic_monitoring():
    assert parse_benchmark_output(XNNPACK_999).peak_memory_mb is None


def test_older_peak_memory_footprint_label_is_read_as_the_init_and_overall_delta():
    result = parse_benchmark_output(DEEPLAB_NPU)  # "Peak memory footprint (MB): init=8.33594 overall=50.3594"
    assert (result.memory_init_mb, result.memory_overall_mb) == pytest.approx((8.33594, 50.3594))
    assert result.peak_memory_mb is None


def test_delegated_node_count_is_read():
    result = parse_benchmark_output(LITERT_SME2)
    assert (result.delegate, result.nodes_delegated, result.nodes_total, result.partitions) == (
        "TfLiteXNNPackDelegate", 1, 1, 1)


def test_explicitly_applied_delegate_is_named_when_no_node_count_is_printed():
    result = parse_benchmark_output(GPU_43541)
    assert (result.delegate, result.nodes_delegated, result.nodes_total, result.partitions) == (
        "GPU", None, None, None)


def test_partially_applied_delegate_is_named():
    assert parse_benchmark_output(DEEPLAB_NPU).delegate == "EXTERNAL"


def test_logcat_prefixes_do_not_hide_the_run():
    result = parse_benchmark_output(NNAPI_LOGCAT_56301)
    assert result.delegate == "NNAPI"
    assert (result.init_ms, result.avg_ms) == pytest.approx((126.059, 12.1676))
    assert (result.runs, result.max_ms) == (75, pytest.approx(13.649))


def test_no_delegate_is_reported_when_the_output_names_none():
    assert parse_benchmark_output(XNNPACK_999).delegate is None


def test_litert_compiled_model_output_is_read_without_an_inference_timings_line():
    result = parse_benchmark_output(LITERT_SME2)
    assert result.avg_ms == pytest.approx(0.464545)  # the timed runs' count= line, finer than "0.46 ms"
    assert result.runs == 2112
    assert (result.init_ms, result.first_ms, result.warmup_avg_ms) == pytest.approx((4.478, 1.033, 0.465319))
    assert (result.memory_init_mb, result.memory_overall_mb) == pytest.approx((8.94, 11.51))
    assert result.peak_memory_mb is None  # "Peak memory usage not available."


def test_older_average_inference_timings_line_is_read():
    result = parse_benchmark_output(TF_README_PROFILE)
    assert (result.init_ms, result.warmup_avg_ms, result.avg_ms) == pytest.approx((38.467, 83.235, 79.7609))
    assert result.runs is None  # its only count= line is the profiler's "Timings (microseconds)"


def test_missing_fields_are_none_not_guessed():
    # "Average inference timings in us: Warmup: 27917.4, Init: 21528106, no stats: 23313.5"
    result = parse_benchmark_output(DEEPSPEECH_2270)
    assert (result.init_ms, result.warmup_avg_ms) == pytest.approx((21528.106, 27.9174))
    assert (result.avg_ms, result.first_ms, result.runs, result.min_ms, result.memory_init_mb) == (
        None, None, None, None, None)


def test_op_profile_comes_from_the_regular_runs_not_the_initialisation():
    assert parse_benchmark_output(DEEPLAB_NPU).op_profile == [
        OpRow("Vx Delegate", 1, 10.871, pytest.approx(0.85076), 1),
        OpRow("TFLite_Detection_PostProcess", 1, 1.907, pytest.approx(0.14924), 1)]


def test_op_profile_is_empty_without_op_profiling():
    assert parse_benchmark_output(GPU_43541).op_profile == []


def test_op_profile_shares_are_fractions():
    rows = parse_op_profile(TF_README_PROFILE)
    assert [(row.op, row.count) for row in rows] == [
        ("CONV_2D", 15), ("DEPTHWISE_CONV_2D", 13), ("SOFTMAX", 1), ("RESHAPE", 1), ("AVERAGE_POOL_2D", 1)]
    assert [row.share for row in rows[:2]] == pytest.approx([0.8927, 0.1073])
    assert sum(row.share for row in rows) == pytest.approx(1.0)


def test_op_profile_node_types_may_contain_spaces():
    rows = parse_op_profile(LITERT_SME2)
    assert rows[0] == OpRow("Fully Connected (NC, PF32) GEMM", 1, 0.382, pytest.approx(0.93171), 1)
    assert [row.op for row in rows[1:]] == [
        "LiteRT::Run[buffer registration]", "LiteRT::Run[Buffer sync]", "Static Reshape (NC)", "AllocateTensors"]
    assert rows[-1].times_called == 0


def test_run_order_alone_is_summed_by_node_type_and_its_cut_off_row_dropped():
    rows = parse_op_profile(DEEPSPEECH_2270)
    assert [(row.op, row.avg_ms, row.times_called) for row in rows] == [
        ("DELEGATE", 21.287, 1), ("ADD", 0.022, 1), ("SPLIT", 0.013, 1)]
    assert rows[0].share == pytest.approx(21.287 / 21.322)


def test_a_text_ending_in_the_initialisation_profile_has_no_op_profile():
    assert parse_op_profile(NNAPI_LOGCAT_INIT_56301) == []


def test_text_without_timings_is_refused_naming_the_missing_line():
    with pytest.raises(ToolFailed, match='printed no "Inference timings" line') as refused:
        parse_benchmark_output(FLEX_62506)
    assert "(TfLiteFlexDelegate) failed to prepare." in str(refused.value)
    assert "count=113 first=216495" in str(refused.value)  # the warm-up's count= line alone is no timed run


def test_error_lines_become_warnings_once_each():
    # Both excerpts verbatim, one after the other: a run whose delegate errored and that still reported timings.
    result = parse_benchmark_output(FLEX_62506 + GPU_43541)
    assert result.warnings == ["> ERROR: Node number 1139 (TfLiteFlexDelegate) failed to prepare.",
                               "> ERROR: Delegate kernel was not initialized"]


def test_settings_named_error_are_not_warnings():
    assert parse_benchmark_output(DEEPLAB_NPU).warnings == []  # "Vx delegate: error_during_init set to 0."


@pytest.mark.parametrize("text", ["", "\n\n", bytes(range(256)).decode("latin-1"), "\x00\xff" * 4000])
def test_garbage_does_not_crash(text):
    with pytest.raises(ToolFailed, match="Inference timings"):
        parse_benchmark_output(text)
    assert parse_op_profile(text) == []


def test_refusal_message_shows_unprintable_bytes_as_question_marks():
    with pytest.raises(ToolFailed) as refused:
        parse_benchmark_output("\x00\x1b[2J\x07")
    assert "\x00" not in str(refused.value) and "\x1b" not in str(refused.value)


def test_the_report_shows_benchmark_models_figures_with_the_delegate_and_says_outputs_are_unchecked():
    import dataclasses

    from edgeq.report.markdown import format_benchmark_model

    figures = dict(dataclasses.asdict(parse_benchmark_output(DEEPLAB_NPU)), delegate_requested="nnapi",
                   source={"kind": "measured", "by": "LiteRT's benchmark_model on pixel-8 over adb, with the nnapi "
                                                     "delegate; outputs not checked"})
    text = "\n".join(format_benchmark_model(figures))
    assert "benchmark_model, nnapi delegate" in text and "outputs not checked" in text
    assert f"{figures['avg_ms']:,.3f} ms" in text
