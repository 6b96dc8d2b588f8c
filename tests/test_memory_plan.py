"""The edgeq-c static memory planner: offsets, in-place rules and their derivations, lifetimes from a graph."""

from __future__ import annotations

import random

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

from edgeq.aot.lifetimes import (
    DEPTHWISE_CHANNEL,
    ELEMENTWISE,
    IN_PLACE_KINDS,
    POINTWISE_PIXEL,
    WINDOW_ROWS,
    buffers_from_graph,
    in_place_rules,
    reshape_aliases,
)
from edgeq.aot.memory import Buffer, InPlace, MemoryPlan, PlanError, check_plan, plan_memory
from edgeq.graph import Graph, Operator, Tensor, read_graph

pytestmark = pytest.mark.usefixtures("no_processes")  # a pure stage: no program, fork or port


def overlaps(plan: MemoryPlan, a: Buffer, b: Buffer) -> bool:
    oa, ob = plan.offsets[a.tensor], plan.offsets[b.tensor]
    return oa < ob + b.nbytes and ob < oa + a.nbytes


def live_together(a: Buffer, b: Buffer) -> bool:
    return a.first_step <= b.last_step and b.first_step <= a.last_step


def assert_no_byte_shared(plan: MemoryPlan, buffers, in_place=()):
    """Independent of check_plan: paint every step's live bytes and count owners per byte."""
    allowed = {(r.input, r.output) for r in plan.in_place}
    for r in plan.in_place:
        assert r in in_place
        assert plan.offsets[r.output] - plan.offsets[r.input] == r.output_offset
        assert plan.scratch_bytes.get(r.step, 0) >= r.scratch_bytes
    regions = [(b.tensor, plan.offsets[b.tensor], b.nbytes, b.first_step, b.last_step) for b in buffers]
    regions += [(("scratch", s), plan.scratch_offsets[s], n, s, s) for s, n in plan.scratch_bytes.items()]
    steps = range(min([r[3] for r in regions] + [0]), max([r[4] for r in regions] + [0]) + 1)
    for step in steps:
        owner = [None] * plan.arena_bytes
        for key, off, n, first, last in regions:
            if not first <= step <= last:
                continue
            assert 0 <= off and off + n <= plan.arena_bytes
            for byte in range(off, off + n):
                other = owner[byte]
                assert other is None or (other, key) in allowed or (key, other) in allowed, (
                    f"step {step}: byte {byte} of {key} also belongs to {other}")
                owner[byte] = key


# --- hand-built buffer lists with known answers ------------------------------------------------


def test_chain_needs_the_larger_adjacent_pair():
    a, b, c = Buffer(0, 100, -1, 0), Buffer(1, 300, 0, 1), Buffer(2, 50, 1, 2)
    plan = plan_memory([a, b, c], alignment=1)
    assert plan.arena_bytes == max(100 + 300, 300 + 50)
    assert plan.lower_bound_bytes == 400
    assert plan.live_bytes == (400, 350, 50)


def test_a_tensor_that_is_dead_gives_its_bytes_to_the_next():
    a, b, c = Buffer(0, 96, -1, 0), Buffer(1, 64, 0, 1), Buffer(2, 96, 1, 2)
    plan = plan_memory([a, b, c])
    assert plan.arena_bytes == 160
    assert plan.offsets[0] == plan.offsets[2]


def test_buffers_alive_together_never_overlap():
    buffers = [Buffer(0, 48, -1, 3), Buffer(1, 32, 0, 1), Buffer(2, 80, 1, 2), Buffer(3, 16, 2, 3),
               Buffer(4, 64, 3, 4)]
    plan = plan_memory(buffers)
    for a in buffers:
        for b in buffers:
            if a.tensor < b.tensor and live_together(a, b):
                assert not overlaps(plan, a, b), (a, b, plan.offsets)


def test_offsets_are_multiples_of_the_alignment():
    buffers = [Buffer(0, 5, -1, 0), Buffer(1, 7, 0, 1), Buffer(2, 3, 1, 2)]
    plan = plan_memory(buffers, alignment=64)
    assert all(off % 64 == 0 for off in plan.offsets.values())
    assert plan.arena_bytes == 64 + 5  # tensor 1 below, 0 and then 2 at the next multiple of 64
    assert plan.alignment == 64


def test_two_buffers_of_one_tensor_are_refused():
    with pytest.raises(ValueError, match="tensor 4 has two buffers"):
        plan_memory([Buffer(4, 16, -1, 0), Buffer(4, 16, 0, 1)])


# --- in-place pairs and scratch -----------------------------------------------------------------


def test_elementwise_in_place_output_takes_the_input_offset():
    buffers = [Buffer(0, 32, -1, 0), Buffer(1, 256, 0, 1), Buffer(2, 256, 1, 2)]
    rule = InPlace(step=1, input=1, output=2, output_offset=0, kind=ELEMENTWISE)
    plan = plan_memory(buffers, [rule])
    assert plan.offsets[2] == plan.offsets[1]
    assert plan.in_place == (rule,)
    assert plan.arena_bytes == 32 + 256
    assert plan.lower_bound_bytes == 512  # the bound counts both, without in-place tricks


def test_a_rule_whose_input_outlives_its_step_is_ignored():
    buffers = [Buffer(1, 256, -1, 2), Buffer(2, 256, 1, 2)]
    plan = plan_memory(buffers, [InPlace(step=1, input=1, output=2, output_offset=0)])
    assert plan.in_place == ()
    assert not overlaps(plan, *buffers)
    assert plan.arena_bytes == 512


def test_expanding_pointwise_output_starts_before_its_input():
    # 1x1 conv, 16 pixels, 8 -> 16 channels: the output must start 16 * (16 - 8) = 128 bytes early.
    buffers = [Buffer(0, 16 * 8, -1, 0), Buffer(1, 16 * 16, 0, 1)]
    rule = InPlace(0, 0, 1, output_offset=-128, scratch_bytes=8, kind=POINTWISE_PIXEL)
    plan = plan_memory(buffers, [rule])
    assert plan.offsets[1] == plan.offsets[0] - 128
    assert plan.offsets[1] + 256 == plan.offsets[0] + 128  # the output ends where the input ends
    assert plan.scratch_bytes == {0: 8}
    assert plan.arena_bytes == 256 + 8  # the pair's footprint is the output; the scratch above it


def test_scratch_is_reserved_only_at_its_step():
    buffers = [Buffer(0, 64, -1, 0), Buffer(1, 64, 0, 1), Buffer(2, 64, 1, 2)]
    plan = plan_memory(buffers, scratch={1: 48})
    start, end = plan.scratch_offsets[1], plan.scratch_offsets[1] + 48
    for b in buffers[1:]:  # both live at step 1
        o = plan.offsets[b.tensor]
        assert end <= o or o + b.nbytes <= start
    assert plan.arena_bytes == 64 + 64 + 48


def test_scratch_of_an_unused_rule_costs_nothing():
    # Writing 1 over 0 would save 64 bytes and cost 4096 of scratch: the plan leaves them apart.
    buffers = [Buffer(0, 64, -1, 0), Buffer(1, 64, 0, 1), Buffer(2, 128, -1, 1)]
    plan = plan_memory(buffers, [InPlace(0, 0, 1, 0, scratch_bytes=4096)])
    assert plan.arena_bytes == 64 + 64 + 128
    assert plan.scratch_bytes == {} and plan.in_place == ()


def test_in_place_never_makes_the_arena_larger():
    buffers = [Buffer(0, 512, -1, 0), Buffer(1, 512, 0, 1), Buffer(2, 64, 1, 2)]
    rule = InPlace(0, 0, 1, 0, scratch_bytes=1024)  # scratch dearer than the bytes it saves
    assert plan_memory(buffers, [rule]).arena_bytes == plan_memory(buffers).arena_bytes == 1024


def test_both_inputs_of_an_add_cannot_share_its_output():
    buffers = [Buffer(0, 64, -1, 0), Buffer(1, 64, -1, 0), Buffer(2, 64, 0, 1)]
    rules = [InPlace(0, 0, 2, 0), InPlace(0, 1, 2, 0)]
    plan = plan_memory(buffers, rules)
    assert len(plan.in_place) == 1
    assert plan.arena_bytes == 128
    assert not overlaps(plan, buffers[0], buffers[1])


# --- check_plan ---------------------------------------------------------------------------------


def test_check_plan_names_both_tensors_of_a_planted_overlap():
    buffers = [Buffer(3, 64, -1, 1), Buffer(7, 64, 0, 1)]
    plan = MemoryPlan(arena_bytes=96, offsets={3: 0, 7: 32}, lower_bound_bytes=128, live_bytes=(128, 128))
    with pytest.raises(PlanError, match=r"tensor 3 \[0, 64\) and tensor 7 \[32, 96\) overlap .*steps 0..1"):
        check_plan(plan, buffers)


def test_check_plan_accepts_the_overlap_an_in_place_rule_allows():
    buffers = [Buffer(3, 64, -1, 0), Buffer(7, 64, 0, 1)]
    plan = MemoryPlan(arena_bytes=64, offsets={3: 0, 7: 0}, lower_bound_bytes=128, live_bytes=(128, 64))
    check_plan(plan, buffers, [InPlace(0, 3, 7, 0)])
    with pytest.raises(PlanError, match="tensor 3 .* and tensor 7 .* overlap"):
        check_plan(plan, buffers, [InPlace(0, 3, 7, -16)])  # a rule for another offset allows nothing


def test_check_plan_wants_the_scratch_an_in_place_kernel_needs():
    buffers = [Buffer(3, 64, -1, 0), Buffer(7, 64, 0, 1)]
    plan = MemoryPlan(arena_bytes=64, offsets={3: 0, 7: 0}, lower_bound_bytes=128, live_bytes=(128, 64))
    with pytest.raises(PlanError, match="tensor 7 is written over tensor 3 at step 0 without the 16 scratch"):
        check_plan(plan, buffers, [InPlace(0, 3, 7, 0, scratch_bytes=16)])


def test_check_plan_catches_a_buffer_past_the_arena_end():
    plan = MemoryPlan(arena_bytes=48, offsets={5: 0}, lower_bound_bytes=64, live_bytes=(64,))
    with pytest.raises(PlanError, match=r"tensor 5 at \[0, 64\) lies outside the 48-byte arena"):
        check_plan(plan, [Buffer(5, 64, -1, 0)])


def test_check_plan_catches_scratch_over_a_live_tensor():
    plan = MemoryPlan(arena_bytes=64, offsets={5: 0}, lower_bound_bytes=64, live_bytes=(64,),
                      scratch_offsets={0: 32}, scratch_bytes={0: 16})
    with pytest.raises(PlanError, match=r"tensor 5 \[0, 64\) and scratch of step 0 \[32, 48\) overlap"):
        check_plan(plan, [Buffer(5, 64, -1, 0)])


# --- random lifetimes ---------------------------------------------------------------------------


def random_buffers(rng: random.Random) -> list[Buffer]:
    steps = rng.randint(1, 12)
    out = []
    for t in range(rng.randint(1, 18)):
        first = rng.randint(-1, steps - 1)
        out.append(Buffer(t, rng.choice([0, rng.randint(1, 40), rng.randint(1, 200)]), first,
                          rng.randint(first, steps)))
    return out


def brute_lower_bound(buffers) -> int:
    steps = range(0, max(b.last_step for b in buffers) + 1)
    return max(sum(b.nbytes for b in buffers if b.first_step <= s <= b.last_step) for s in steps)


def test_random_lifetimes_always_give_valid_plans_at_or_above_the_bound():
    for seed in range(300):
        rng = random.Random(seed)
        buffers = random_buffers(rng)
        alignment = rng.choice([1, 4, 16])
        plan = plan_memory(buffers, alignment=alignment)
        assert_no_byte_shared(plan, buffers)
        assert all(o % alignment == 0 for o in plan.offsets.values()), seed
        assert plan.lower_bound_bytes == brute_lower_bound(buffers), seed
        assert plan.arena_bytes >= plan.lower_bound_bytes, seed
        assert plan.arena_bytes <= sum(-(-b.nbytes // alignment) * alignment for b in buffers), seed


def test_random_in_place_rules_always_give_valid_plans_no_larger_than_without():
    for seed in range(200):
        rng = random.Random(1000 + seed)
        buffers = random_buffers(rng)
        by_step = {}
        for b in buffers:
            by_step.setdefault(b.first_step, []).append(b)
        rules, scratch = [], {}
        for src in buffers:
            for dst in by_step.get(src.last_step, []):
                if dst is not src and rng.random() < 0.7:
                    offset = 16 * rng.randint(-(dst.nbytes // 16), src.nbytes // 16)
                    rules.append(InPlace(src.last_step, src.tensor, dst.tensor, offset, rng.choice([0, 16, 48])))
        if rng.random() < 0.5:
            scratch = {rng.randint(0, 6): rng.randint(1, 64)}
        plan = plan_memory(buffers, rules, scratch=scratch)
        assert_no_byte_shared(plan, buffers, rules)
        for step, n in scratch.items():
            assert plan.scratch_bytes[step] >= n, seed
        assert plan.arena_bytes <= plan_memory(buffers, scratch=scratch).arena_bytes, seed


def test_a_few_hundred_buffers_with_in_place_rules_plan_no_larger_than_without():
    rng = random.Random(7)
    buffers = [Buffer(t, 16 * rng.randint(1, 64), t - 1, t + (rng.randint(1, 6) if rng.random() < 0.2 else 0))
               for t in range(400)]
    rules = [InPlace(b.last_step, b.tensor, b.tensor + 1, -16 * rng.randint(0, 4), 16)
             for b in buffers[:-1] if b.last_step == b.tensor]
    plan = plan_memory(buffers, rules)
    assert plan.arena_bytes <= plan_memory(buffers).arena_bytes


# --- graphs built by hand -----------------------------------------------------------------------


class GraphBuilder:
    def __init__(self):
        self.tensors: list[Tensor] = []
        self.ops: list[Operator] = []

    def act(self, shape, type="INT8") -> int:
        self.tensors.append(Tensor(len(self.tensors), f"a{len(self.tensors)}", tuple(shape), type))
        return len(self.tensors) - 1

    def const(self, shape, type="INT8") -> int:
        nbytes = int(np.prod(shape)) * np.dtype(type.lower()).itemsize
        self.tensors.append(Tensor(len(self.tensors), f"w{len(self.tensors)}", tuple(shape), type,
                                   data=bytes(nbytes)))
        return len(self.tensors) - 1

    def op(self, opcode, inputs, output_shape, options=None, type="INT8") -> int:
        out = self.act(output_shape, type)
        self.ops.append(Operator(len(self.ops), opcode, tuple(inputs), (out,), options))
        return out

    def conv(self, x, cout, k=1, stride=1, same=True) -> int:
        n, h, w, cin = self.tensors[x].shape
        opt = schema.Conv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW = (0 if same else 1), stride, stride
        opt.dilationHFactor = opt.dilationWFactor = 1
        ho = -(-h // stride) if same else (h - k) // stride + 1
        wo = -(-w // stride) if same else (w - k) // stride + 1
        return self.op("CONV_2D", [x, self.const((cout, k, k, cin)), self.const((cout,), "INT32")],
                       (n, ho, wo, cout), opt)

    def depthwise(self, x, multiplier=1, k=3, stride=1) -> int:
        n, h, w, c = self.tensors[x].shape
        opt = schema.DepthwiseConv2DOptionsT()
        opt.padding, opt.strideH, opt.strideW, opt.depthMultiplier = 0, stride, stride, multiplier
        opt.dilationHFactor = opt.dilationWFactor = 1
        return self.op("DEPTHWISE_CONV_2D",
                       [x, self.const((1, k, k, c * multiplier)), self.const((c * multiplier,), "INT32")],
                       (n, -(-h // stride), -(-w // stride), c * multiplier), opt)

    def graph(self, inputs, outputs) -> Graph:
        return Graph(tuple(self.tensors), tuple(self.ops), tuple(inputs), tuple(outputs))


def test_lifetimes_run_from_the_writing_op_to_the_last_reader():
    g = GraphBuilder()
    x = g.act((1, 4, 4, 8))
    a = g.conv(x, 8)
    b = g.op("RELU", [a], (1, 4, 4, 8))
    c = g.op("ADD", [a, b], (1, 4, 4, 8))
    buffers = buffers_from_graph(g.graph([x], [c]))
    assert buffers == [Buffer(x, 128, -1, 0), Buffer(a, 128, 0, 2), Buffer(b, 128, 1, 2), Buffer(c, 128, 2, 3)]


def test_an_alias_shares_its_root_and_stretches_the_root_lifetime():
    g = GraphBuilder()
    x = g.act((1, 2, 2, 16))
    pooled = g.op("MEAN", [x, g.const((2,), "INT32")], (1, 1, 1, 16))
    flat = g.op("RESHAPE", [pooled, g.const((2,), "INT32")], (1, 16))
    logits = g.op("FULLY_CONNECTED", [flat, g.const((4, 16)), g.const((4,), "INT32")], (1, 4))
    graph = g.graph([x], [logits])
    aliases = reshape_aliases(graph)
    assert aliases == {flat: pooled}
    buffers = buffers_from_graph(graph, aliases)
    assert [b.tensor for b in buffers] == [x, pooled, logits]
    assert buffers[1] == Buffer(pooled, 16, 0, 2)


def test_fused_away_tensors_get_no_buffer_and_widen_their_neighbours():
    g = GraphBuilder()
    x = g.act((1, 4, 4, 4))
    pre = g.conv(x, 4)
    y = g.op("RELU", [pre], (1, 4, 4, 4))
    z = g.op("RELU", [y], (1, 4, 4, 4))
    buffers = buffers_from_graph(g.graph([x], [z]), skip={pre})
    assert buffers == [Buffer(x, 64, -1, 1), Buffer(y, 64, 0, 2), Buffer(z, 64, 2, 3)]


def test_model_inputs_cannot_be_skipped():
    g = GraphBuilder()
    x = g.act((1, 8))
    y = g.op("RELU", [x], (1, 8))
    with pytest.raises(ValueError, match=rf"tensors \[{x}\] are model inputs, outputs or aliases"):
        buffers_from_graph(g.graph([x], [y]), skip={x})


def residual_block(g: GraphBuilder, x: int) -> tuple[int, int, int]:
    """conv -> conv -> ADD(second conv, x): (first conv out, second conv out, ADD out)."""
    a = g.conv(x, 8, k=3)
    b = g.conv(a, 8, k=3)
    return a, b, g.op("ADD", [b, x], (1, 4, 4, 8))


def test_ops_given_one_step_run_as_one_kernel_with_exact_lifetimes():
    g = GraphBuilder()
    x = g.act((1, 4, 4, 8))
    a, b, out = residual_block(g, x)
    graph = g.graph([x], [out])
    # The second convolution runs inside the ADD's step: its output is never stored.
    buffers = buffers_from_graph(graph, skip={b}, step_of={0: 0, 1: 1, 2: 1})
    assert buffers == [Buffer(x, 128, -1, 1), Buffer(a, 128, 0, 1), Buffer(out, 128, 1, 2)]


def test_fused_add_may_write_over_its_dying_skip_input():
    g = GraphBuilder()
    x0 = g.act((1, 4, 4, 8))
    x = g.op("RELU", [x0], (1, 4, 4, 8))
    a, b, out = residual_block(g, x)
    graph = g.graph([x0], [out])
    step_of = {0: 0, 1: 1, 2: 2, 3: 2}
    buffers = buffers_from_graph(graph, skip={b}, step_of=step_of)
    rules = in_place_rules(graph, buffers, step_of=step_of)
    assert InPlace(2, x, out, 0, kind=ELEMENTWISE) in rules
    plan = plan_memory(buffers, rules)
    assert plan.arena_bytes == 256 and plan.offsets[out] == plan.offsets[x]


def test_no_rule_over_an_input_another_op_of_the_same_step_reads():
    g = GraphBuilder()
    x0 = g.act((1, 4, 4, 8))
    x = g.op("RELU", [x0], (1, 4, 4, 8))
    b = g.conv(x, 8, k=3)  # reads x through a 3x3 window ...
    out = g.op("ADD", [b, x], (1, 4, 4, 8))  # ... in the same kernel that adds x element by element
    graph = g.graph([x0], [out])
    step_of = {0: 0, 1: 1, 2: 1}
    rules = in_place_rules(graph, buffers_from_graph(graph, skip={b}, step_of=step_of), step_of=step_of)
    assert [r for r in rules if r.step == 1] == []


def test_ops_left_out_of_the_schedule_do_not_run():
    g = GraphBuilder()
    x = g.act((1, 2, 2, 16))
    pooled = g.op("MEAN", [x, g.const((2,), "INT32")], (1, 1, 1, 16))
    flat = g.op("RESHAPE", [pooled, g.const((2,), "INT32")], (1, 16))
    logits = g.op("FULLY_CONNECTED", [flat, g.const((4, 16)), g.const((4,), "INT32")], (1, 4))
    graph = g.graph([x], [logits])
    buffers = buffers_from_graph(graph, reshape_aliases(graph), step_of={0: 0, 2: 1})
    assert buffers == [Buffer(x, 64, -1, 0), Buffer(pooled, 16, 0, 1), Buffer(logits, 4, 1, 2)]


def test_a_schedule_naming_an_unknown_op_is_refused():
    g = GraphBuilder()
    x = g.act((1, 8))
    y = g.op("RELU", [x], (1, 8))
    with pytest.raises(ValueError, match=r"step_of names ops \[5\] the graph lacks"):
        buffers_from_graph(g.graph([x], [y]), step_of={0: 0, 5: 1})


def test_in_place_rules_cover_elementwise_depthwise_and_pointwise():
    g = GraphBuilder()
    x = g.act((1, 6, 6, 8))
    d = g.depthwise(x, stride=2)                      # 3x3x8, channel by channel
    p = g.conv(d, 16)                                  # 1x1, 8 -> 16 over 9 pixels
    r = g.op("RELU", [p], (1, 3, 3, 16))
    q = g.conv(r, 8)                                   # 1x1, 16 -> 8
    graph = g.graph([x], [q])
    rules = in_place_rules(graph, buffers_from_graph(graph), alignment=1)
    assert rules == [
        # the channel's padded plane: 2 * 2 + 3 rows, 2 * 2 + 4 bytes a row (a word past the last window)
        InPlace(0, x, d, 0, scratch_bytes=7 * 8, kind=DEPTHWISE_CHANNEL),
        InPlace(1, d, p, -9 * (16 - 8), scratch_bytes=8, kind=POINTWISE_PIXEL),
        InPlace(2, p, r, 0, kind=ELEMENTWISE),
        InPlace(3, r, q, 0, scratch_bytes=16, kind=POINTWISE_PIXEL),
    ]


def test_pointwise_offset_is_rounded_down_to_the_alignment():
    g = GraphBuilder()
    x = g.act((1, 3, 3, 8))
    p = g.conv(x, 16)
    graph = g.graph([x], [p])
    (rule,) = in_place_rules(graph, buffers_from_graph(graph), alignment=16)
    assert rule.output_offset == -80  # -72 rounded down: any offset below the bound is safe too


def test_no_rule_where_the_kernel_could_clobber_unread_input():
    g = GraphBuilder()
    x = g.act((1, 4, 4, 4))
    d = g.depthwise(x, multiplier=2)                   # channels grow: outputs land on other channels
    s = g.conv(d, 8, stride=2)                         # strided 1x1: not pixel for pixel
    w = g.conv(s, 8, k=3)                              # a 3x3 window needs the row-buffered kernel
    graph = g.graph([x], [w])
    assert in_place_rules(graph, buffers_from_graph(graph)) == []


def test_an_input_read_later_gets_no_rule():
    g = GraphBuilder()
    x = g.act((1, 16))
    a = g.op("RELU", [x], (1, 16))
    b = g.op("ADD", [a, x], (1, 16))
    graph = g.graph([x], [b])
    rules = in_place_rules(graph, buffers_from_graph(graph))
    assert rules == [InPlace(1, a, b, 0, kind=ELEMENTWISE), InPlace(1, x, b, 0, kind=ELEMENTWISE)]


def test_dequantize_output_starts_three_bytes_a_value_early():
    g = GraphBuilder()
    x = g.act((1, 32))
    y = g.op("DEQUANTIZE", [x], (1, 32), type="FLOAT32")
    graph = g.graph([x], [y])
    assert in_place_rules(graph, buffers_from_graph(graph)) == [InPlace(0, x, y, -96, kind=ELEMENTWISE)]


def test_window_rows_rule_only_when_asked_for():
    g = GraphBuilder()
    x = g.act((1, 5, 5, 2))
    y = g.conv(x, 2, k=3)
    graph = g.graph([x], [y])
    buffers = buffers_from_graph(graph)
    assert in_place_rules(graph, buffers) == []
    assert in_place_rules(graph, buffers, alignment=1, kinds=[WINDOW_ROWS]) == [
        InPlace(0, x, y, -10, scratch_bytes=10, kind=WINDOW_ROWS)]
    with pytest.raises(ValueError, match="unknown in-place kinds \\['rows'\\]; known: elementwise"):
        in_place_rules(graph, buffers, kinds=["rows"])


# --- the derivations, checked by running the kernels' write order on bytes ---------------------


def derived_offset(graph: Graph, kind: str) -> int:
    (rule,) = in_place_rules(graph, buffers_from_graph(graph), alignment=1, kinds=[kind])
    return rule.output_offset


def pointwise_in_arena(arena, at_in, at_out, x, weights):
    """Pixel by pixel: copy the pixel's input to scratch, then write its output."""
    pixels, cin = x.shape
    cout = weights.shape[0]
    for p in range(pixels):
        scratch = arena[at_in + p * cin: at_in + (p + 1) * cin].copy()
        arena[at_out + p * cout: at_out + (p + 1) * cout] = (weights @ scratch) % 251


def test_pointwise_pixel_offset_is_safe_and_the_bound_is_tight():
    g = GraphBuilder()
    x_t = g.act((1, 2, 3, 3))
    y_t = g.conv(x_t, 7)
    offset = derived_offset(g.graph([x_t], [y_t]), POINTWISE_PIXEL)
    assert offset == -6 * (7 - 3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 251, (6, 3))
    weights = rng.integers(1, 251, (7, 3))
    expected = (x @ weights.T) % 251
    # Only pixels after the one being written must survive: the bound is (P-1)*(Cin-Cout), one
    # pixel's growth above the offset chosen, which makes the output end where the input ends.
    tight = 7 - 3
    for delta, safe in [(0, True), (-5, True), (tight, True), (tight + 1, False)]:
        arena = np.zeros(128, np.int64)
        arena[64:64 + x.size] = x.ravel()
        pointwise_in_arena(arena, 64, 64 + offset + delta, x, weights)
        out = arena[64 + offset + delta: 64 + offset + delta + expected.size].reshape(expected.shape)
        assert np.array_equal(out, expected) == safe, delta


def window_3x3(plane, kernel, stride):
    """SAME 3x3 window over (H, W, C) with per-output weights; stride 1 or 2 as TFLite pads it."""
    h, w = plane.shape[:2]
    ho, wo = -(-h // stride), -(-w // stride)
    top = max((ho - 1) * stride + 3 - h, 0) // 2
    left = max((wo - 1) * stride + 3 - w, 0) // 2
    padded = np.zeros((h + 4, w + 4) + plane.shape[2:], np.int64)
    padded[top: top + h, left: left + w] = plane
    return padded, ho, wo


def test_depthwise_channel_by_channel_may_write_over_its_input_at_any_stride():
    rng = np.random.default_rng(1)
    h, w, c = 5, 6, 3
    for stride in (1, 2):
        g = GraphBuilder()
        x_t = g.act((1, h, w, c))
        y_t = g.depthwise(x_t, stride=stride)
        assert derived_offset(g.graph([x_t], [y_t]), DEPTHWISE_CHANNEL) == 0
        x = rng.integers(0, 251, (h, w, c))
        kernel = rng.integers(1, 251, (3, 3, c))
        padded, ho, wo = window_3x3(x, kernel, stride)
        expected = np.zeros((ho, wo, c), np.int64)
        for oy in range(ho):
            for ox in range(wo):
                win = padded[oy * stride: oy * stride + 3, ox * stride: ox * stride + 3]
                expected[oy, ox] = (win * kernel).sum(axis=(0, 1)) % 251
        arena = x.ravel().copy()
        for ch in range(c):
            scratch = arena[ch: h * w * c: c].copy().reshape(h, w)  # the channel, copied first
            plane, _, _ = window_3x3(scratch, kernel[:, :, ch], stride)
            for oy in range(ho):
                for ox in range(wo):
                    win = plane[oy * stride: oy * stride + 3, ox * stride: ox * stride + 3]
                    arena[(oy * wo + ox) * c + ch] = (win * kernel[:, :, ch]).sum() % 251
        assert np.array_equal(arena[: ho * wo * c].reshape(ho, wo, c), expected), stride


def test_window_rows_offset_is_the_closest_safe_placement():
    h, w, cin, cout = 5, 4, 2, 3
    g = GraphBuilder()
    x_t = g.act((1, h, w, cin))
    y_t = g.conv(x_t, cout, k=3)
    offset = derived_offset(g.graph([x_t], [y_t]), WINDOW_ROWS)
    # row_in = 8, row_out = 12, one row of top padding: rows 0..j-1 out must end by input row j-1.
    assert offset == min((j - 1) * w * cin - j * w * cout for j in range(1, h))
    rng = np.random.default_rng(2)
    x = rng.integers(0, 251, (h, w, cin))
    weights = rng.integers(1, 251, (3, 3, cin, cout))

    def output_row(image, y):
        padded, _, _ = window_3x3(image, None, 1)
        return np.stack([np.einsum("abi,abio->o", padded[y: y + 3, ox: ox + 3], weights) % 251
                         for ox in range(w)])
    expected = np.stack([output_row(x, y) for y in range(h)])
    for delta, safe in [(0, True), (1, False)]:
        arena = np.zeros(200, np.int64)
        base = 100
        arena[base: base + x.size] = x.ravel()
        at = base + offset + delta
        for y in range(h):
            row = output_row(arena[base: base + x.size].reshape(h, w, cin), y)  # into scratch
            arena[at + y * w * cout: at + (y + 1) * w * cout] = row.ravel()
        assert np.array_equal(arena[at: at + expected.size].reshape(expected.shape), expected) == safe


# --- the MLPerf Tiny models ---------------------------------------------------------------------

# TFLM's recorded arena for each model: the non-persistent head, and the total with its structs.
MLPERF = {
    "kws_ref_model.tflite": (16_000, 24_272),
    "vww_96_int8.tflite": (73_728, 103_680),
    "pretrainedResnet_quant.tflite": (49_152, 55_984),
    "ad01_int8.tflite": (768, 3_984),
}


@pytest.mark.shared
@pytest.mark.parametrize("model", MLPERF)
def test_mlperf_plans_fit_in_tflm_head(shared_models, model):
    head, total = MLPERF[model]
    graph = read_graph((shared_models / model).read_bytes(), model)
    aliases = reshape_aliases(graph)
    buffers = buffers_from_graph(graph, aliases)
    plain = plan_memory(buffers)
    rules = in_place_rules(graph, buffers, aliases)
    fused = plan_memory(buffers, rules)
    rows_rules = in_place_rules(graph, buffers, aliases, kinds=IN_PLACE_KINDS)
    rows = plan_memory(buffers, rows_rules)
    print(f"\n{model}: lower bound {plain.lower_bound_bytes} B; arena {plain.arena_bytes} B plain, "
          f"{fused.arena_bytes} B with in-place ({len(fused.in_place)} rules), {rows.arena_bytes} B adding "
          f"window rows; TFLM head {head} B, total {total} B")
    assert plain.arena_bytes == plain.lower_bound_bytes <= head
    assert rows.arena_bytes <= fused.arena_bytes <= plain.arena_bytes
    assert rows.arena_bytes <= 0.7 * total
    for plan, used in [(plain, []), (fused, rules), (rows, rows_rules)]:
        check_plan(plan, buffers, used)


def test_rows_written_over_the_input_wait_for_the_last_row_reading_it():
    from edgeq.aot.lifetimes import depthwise_ring_rows

    # stride 2, SAME, even input: output row y lands on input rows y/2.., long read already
    assert depthwise_ring_rows((1, 48, 48, 16), (1, 24, 24, 16), stride_h=2, pad_top=0) == 1
    # stride 1, a 3x3 window padded by one: row y waits for row y + 1, which reads input row y
    assert depthwise_ring_rows((1, 12, 12, 8), (1, 12, 12, 8), stride_h=1, pad_top=1) == 2
