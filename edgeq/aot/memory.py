"""Static memory plan for edgeq-c: one arena, an offset for every activation tensor.

A buffer is a rectangle in (op step, byte address): it occupies [offset, offset + nbytes) from
the op that writes it (`first_step`, -1 for model inputs) to the last op that reads it
(`last_step`, len(ops) for model outputs) inclusive. Two buffers whose step ranges meet must not
share a byte, except an in-place pair: at op `step` the output may sit exactly at
offset(input) + output_offset when the input dies there and the kernel never writes a byte of
the input before reading it (`InPlace`; the rules for each op kind are derived in
docs/edgeq-c-memory.md and built by `in_place_rules`). A kernel that needs a working buffer gets
a scratch region live only at its step.

Finding the smallest arena is NP-hard (dynamic storage allocation), so `plan_memory` runs a few
offline heuristics and keeps the smallest valid result:
- first fit per buffer in several orders -- size descending (TFLM's GreedyMemoryPlanner),
  "breadth" (ops by descending live bytes, then their buffers by size, as in TFLite's
  greedy-by-breadth), lifetime descending, and chronological -- each without in-place pairs,
  and each again with in-place pairs, where a buffer may also take the position a placed
  partner dictates when that grows the arena no more than first fit does;
- the same orders over rigid blocks: buffers joined by every compatible in-place rule and
  placed as one shape (the output pinned relative to its input).
Guarantees: every plan returned passes `check_plan` (it is checked before it is returned);
every offset is a multiple of `alignment`; without in-place rules the arena is at least
`lower_bound_bytes`, the largest sum of live tensor bytes at any step for this op order; with
them it is never larger than without (the plain plans are among the candidates), and a rule
the plan does not use costs no scratch. Not guaranteed: the optimum. The work is about
(buffers x buffers overlapping in time) per pass, 12 passes at most: milliseconds for a few
hundred tensors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Buffer:
    tensor: int
    nbytes: int
    first_step: int  # the op that writes it; -1 = model input
    last_step: int  # the last op that reads it; len(ops) for model outputs


@dataclass(frozen=True)
class InPlace:
    """At op `step`, `output` may start at offset(input) + output_offset while `input` is read."""

    step: int
    input: int
    output: int
    output_offset: int
    scratch_bytes: int = 0  # working copy the in-place kernel needs at this step
    kind: str = ""  # which derivation allows it: one of IN_PLACE_KINDS


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    offsets: dict[int, int]  # tensor -> byte offset in the arena
    lower_bound_bytes: int
    live_bytes: tuple[int, ...]  # tensor bytes live at each step 0..max(last_step)
    in_place: tuple[InPlace, ...] = ()  # the rules the plan relies on (the kernels must use them)
    scratch_offsets: dict[int, int] = field(default_factory=dict)  # step -> offset
    scratch_bytes: dict[int, int] = field(default_factory=dict)  # step -> bytes reserved
    alignment: int = 16
    strategy: str = ""


class PlanError(ValueError):
    """A plan breaks an invariant; the message names the tensors (or scratch regions) involved."""


def align_up(x: int, a: int) -> int:
    return -(-x // a) * a


def align_down(x: int, a: int) -> int:
    return (x // a) * a


def _name(key) -> str:
    return f"scratch of step {key[1]}" if isinstance(key, tuple) else f"tensor {key}"


def _applicable(rule: InPlace, by_tensor: Mapping[int, Buffer]) -> bool:
    src, dst = by_tensor.get(rule.input), by_tensor.get(rule.output)
    return (src is not None and dst is not None and rule.input != rule.output
            and src.last_step == rule.step == dst.first_step)


def _live_bytes(buffers: Sequence[Buffer]) -> tuple[int, ...]:
    steps = max([b.last_step for b in buffers] + [0]) + 1
    delta = [0] * (steps + 1)
    for b in buffers:
        if b.last_step >= 0:
            delta[max(b.first_step, 0)] += b.nbytes
            delta[b.last_step + 1] -= b.nbytes
    live, total = [], 0
    for s in range(steps):
        total += delta[s]
        live.append(total)
    return tuple(live)


class _Items:
    """Buffers and scratch regions as parallel lists, with who overlaps whom in time."""

    def __init__(self, keys: list, sizes: list[int], firsts: list[int], lasts: list[int]):
        self.keys, self.sizes, self.firsts, self.lasts = keys, sizes, firsts, lasts
        self.index = {k: i for i, k in enumerate(keys)}
        self.neighbours: list[list[int]] = [[] for _ in keys]
        active: list[int] = []
        # Empty regions are listed too: a scratch region may grow after the first placement.
        for i in sorted(range(len(keys)), key=lambda i: firsts[i]):
            active = [a for a in active if lasts[a] >= firsts[i]]
            for a in active:
                self.neighbours[i].append(a)
                self.neighbours[a].append(i)
            active.append(i)


def _orders(items: _Items, units: list[list[int]], extents: list[int]) -> dict[str, list[int]]:
    """Unit indices in each heuristic's order; a unit is one buffer or a rigid block of them."""
    first = [min(items.firsts[i] for i in u) for u in units]
    last = [max(items.lasts[i] for i in u) for u in units]
    n = range(len(units))
    steps = max(last + [0]) + 1
    breadth = [0] * steps
    live_at: list[list[int]] = [[] for _ in range(steps)]
    for u in n:
        for s in range(max(first[u], 0), last[u] + 1):
            breadth[s] += extents[u]
            live_at[s].append(u)
    by_breadth: list[int] = []
    seen: set[int] = set()
    for s in sorted(range(steps), key=lambda s: -breadth[s]):
        for u in sorted(live_at[s], key=lambda u: (-extents[u], first[u])):
            if u not in seen:
                seen.add(u)
                by_breadth.append(u)
    by_breadth += [u for u in n if u not in seen]
    return {
        "size": sorted(n, key=lambda u: (-extents[u], first[u])),
        "breadth": by_breadth,
        "lifetime": sorted(n, key=lambda u: (first[u] - last[u], -extents[u], first[u])),
        "chronological": sorted(n, key=lambda u: (first[u], -extents[u])),
    }


def _fits(items: _Items, off: list, i: int, at: int, allowed: Mapping[int, set]) -> bool:
    size = items.sizes[i]
    if size == 0:
        return True
    for j in items.neighbours[i]:
        o = off[j]
        if o is not None and items.sizes[j] and o < at + size and at < o + items.sizes[j]:
            if (j, at - o) not in allowed.get(i, ()):
                return False
    return True


def _first_fit(items: _Items, off: list, i: int, start: int, alignment: int) -> int:
    size = items.sizes[i]
    at = start
    for o, j in sorted((off[j], j) for j in items.neighbours[i] if off[j] is not None and items.sizes[j]):
        end = o + items.sizes[j]
        if end <= at:
            continue
        if o >= at + size:
            break
        at = align_up(end, alignment)
    return at


def _place_singly(items: _Items, order: list[int], partners: Mapping[int, list], alignment: int) -> list:
    """First fit in `order`; a buffer takes an in-place partner's position when that is no worse."""
    allowed = {i: {(j, rel) for j, rel in ps} for i, ps in partners.items()}
    off: list = [None] * len(items.keys)
    lo = hi = 0
    for i in order:
        size = items.sizes[i]
        if size == 0:
            off[i] = 0
            continue
        at = _first_fit(items, off, i, lo, alignment)
        best = (max(0, at + size - hi), 1, at)
        for j, rel in partners.get(i, ()):
            if off[j] is not None and _fits(items, off, i, off[j] + rel, allowed):
                c = off[j] + rel
                best = min(best, (max(0, c + size - hi) + max(0, lo - c), 0, c))
        off[i] = best[2]
        lo, hi = min(lo, off[i]), max(hi, off[i] + size)
    return off


def _join_blocks(items: _Items, rules: list[tuple[int, int, int]]) -> list[list[tuple[int, int]]]:
    """Rigid blocks: members with offsets relative to their block, one rule at a time when compatible."""
    allowed: dict[int, set] = {}
    for a, b, d in rules:
        allowed.setdefault(b, set()).add((a, d))
        allowed.setdefault(a, set()).add((b, -d))
    block = list(range(len(items.keys)))
    rel = [0] * len(items.keys)
    members = {i: [i] for i in block}

    def clashes(y: int, ry: int, target: int) -> bool:
        return any(block[x] == target and items.sizes[x] and items.sizes[y]
                   and rel[x] < ry + items.sizes[y] and ry < rel[x] + items.sizes[x]
                   and (x, ry - rel[x]) not in allowed.get(y, ()) for x in items.neighbours[y])
    for a, b, d in rules:
        if block[a] == block[b]:
            continue
        shift = rel[a] + d - rel[b]
        if any(clashes(y, rel[y] + shift, block[a]) for y in members[block[b]]):
            continue
        moved = members.pop(block[b])
        for y in moved:
            rel[y] += shift
            block[y] = block[a]
        members[block[a]] += moved
    return [[(i, rel[i]) for i in m] for m in members.values()]


def _place_blocks(items: _Items, blocks: list[list[tuple[int, int]]], order: list[int], alignment: int) -> list:
    off: list = [None] * len(items.keys)
    for u in order:
        base = min(r for _, r in blocks[u])
        mem = [(i, r - base) for i, r in blocks[u]]
        cands = {0}
        for i, r in mem:
            for j in items.neighbours[i]:
                if off[j] is not None:
                    cands.add(max(0, align_up(off[j] + items.sizes[j] - r, alignment)))
        for at in sorted(cands):
            if all(_fits(items, off, i, at + r, {}) for i, r in mem):
                break
        for i, r in mem:
            off[i] = at + r
    return off


def plan_memory(buffers: Sequence[Buffer], in_place: Sequence[InPlace] = (), alignment: int = 16,
                scratch: Mapping[int, int] | None = None) -> MemoryPlan:
    """Offsets for every buffer in one arena. `scratch[step]` reserves a working region at that step.

    One scratch region a step, sized for whichever kernel variant runs there: the larger of
    `scratch[step]` and the `scratch_bytes` of the in-place rules the plan uses at that step (an
    in-place kernel that needs its regular scratch as well should say so in its rule's
    scratch_bytes). Rules the plan does not use cost nothing; `plan.in_place` lists those it uses,
    and the emitter must run those ops' in-place kernel variants.
    """
    if alignment < 1:
        raise ValueError(f"alignment must be a positive number of bytes, got {alignment}")
    by_tensor: dict[int, Buffer] = {}
    for b in buffers:
        if b.tensor in by_tensor:
            raise ValueError(f"tensor {b.tensor} has two buffers")
        if b.nbytes < 0 or b.last_step < b.first_step:
            raise ValueError(f"tensor {b.tensor}: bad buffer {b}")
        by_tensor[b.tensor] = b
    if any(n < 0 for n in (scratch or {}).values()):
        raise ValueError(f"negative scratch bytes in {dict(scratch or {})}")
    explicit = {s: n for s, n in (scratch or {}).items() if n > 0}
    rules = [r for r in in_place if _applicable(r, by_tensor) and r.output_offset % alignment == 0]
    steps = sorted(set(explicit) | {r.step for r in rules if r.scratch_bytes > 0})
    items = _Items(
        [b.tensor for b in buffers] + [("scratch", s) for s in steps],
        [b.nbytes for b in buffers] + [explicit.get(s, 0) for s in steps],
        [b.first_step for b in buffers] + steps,
        [b.last_step for b in buffers] + steps,
    )
    pairs = [(items.index[r.input], items.index[r.output], r.output_offset) for r in rules]
    partners: dict[int, list] = {}
    for a, b, d in pairs:
        partners.setdefault(b, []).append((a, d))
        partners.setdefault(a, []).append((b, -d))

    def overlapping(off: list, a: int, b: int) -> bool:
        return off[a] < off[b] + items.sizes[b] and off[b] < off[a] + items.sizes[a]

    def finish(off: list, strategy: str) -> tuple:
        used = [r for r, (a, b, d) in zip(rules, pairs) if off[b] - off[a] == d and overlapping(off, a, b)]
        need = dict(explicit)
        for r in used:
            if r.scratch_bytes > 0:
                need[r.step] = max(need.get(r.step, 0), r.scratch_bytes)
        off = list(off)
        base = min(off + [0])
        for s, n in need.items():
            i = items.index[("scratch", s)]
            if n > items.sizes[i]:  # grown by a rule the plan uses: place it again at its full size
                items.sizes[i], old = n, items.sizes[i]
                off[i] = None
                off[i] = _first_fit(items, off, i, base, alignment)
                items.sizes[i] = old
        off = [o - base for o in off]
        ends = [o + (need.get(k[1], 0) if isinstance(k, tuple) else items.sizes[i])
                for i, (k, o) in enumerate(zip(items.keys, off))]
        return max(ends + [0]), len(used), strategy, off, used, need

    candidates = []
    for name, order in _orders(items, [[i] for i in range(len(items.keys))], items.sizes).items():
        candidates.append(finish(_place_singly(items, order, {}, alignment), name))
        if rules:
            candidates.append(finish(_place_singly(items, order, partners, alignment), f"{name}+in-place"))
    if rules:
        blocks = _join_blocks(items, pairs)
        rel = {i: r for bl in blocks for i, r in bl}
        home = {i: k for k, bl in enumerate(blocks) for i, _ in bl}
        saved = list(items.sizes)
        for r, (a, b, d) in zip(rules, pairs):  # a block relies on the rules it joined: reserve their scratch
            if home[a] == home[b] and rel[b] - rel[a] == d and r.scratch_bytes > 0:
                i = items.index[("scratch", r.step)]
                items.sizes[i] = max(items.sizes[i], r.scratch_bytes)
        extents = [max(r + items.sizes[i] for i, r in bl) - min(r for _, r in bl) for bl in blocks]
        for name, order in _orders(items, [[i for i, _ in bl] for bl in blocks], extents).items():
            candidates.append(finish(_place_blocks(items, blocks, order, alignment), f"{name}+blocks"))
        items.sizes[:] = saved
    arena, _, strategy, off, used, need = min(candidates, key=lambda c: (c[0], c[1]))
    live = _live_bytes(buffers)
    plan = MemoryPlan(
        arena_bytes=arena,
        offsets={k: off[i] for i, k in enumerate(items.keys) if not isinstance(k, tuple)},
        lower_bound_bytes=max(live + (0,)),
        live_bytes=live,
        in_place=tuple(used),
        scratch_offsets={s: off[items.index[("scratch", s)]] for s, n in need.items() if n > 0},
        scratch_bytes={s: n for s, n in need.items() if n > 0},
        alignment=alignment,
        strategy=strategy,
    )
    check_plan(plan, buffers, in_place)
    return plan


def check_plan(plan: MemoryPlan, buffers: Sequence[Buffer], in_place: Sequence[InPlace] = ()) -> None:
    """Raise PlanError unless every buffer and scratch region fits the arena without a forbidden overlap."""
    by_tensor = {b.tensor: b for b in buffers}
    allowed = {(r.input, r.output, r.output_offset): r for r in in_place if _applicable(r, by_tensor)}
    regions = []
    for b in buffers:
        if b.tensor not in plan.offsets:
            raise PlanError(f"tensor {b.tensor} has no offset in the plan")
        regions.append((b.tensor, plan.offsets[b.tensor], b.nbytes, b.first_step, b.last_step))
    for s, n in plan.scratch_bytes.items():
        if s not in plan.scratch_offsets:
            raise PlanError(f"scratch of step {s} has no offset in the plan")
        regions.append((("scratch", s), plan.scratch_offsets[s], n, s, s))
    for key, o, n, _, _ in regions:
        if o < 0 or o + n > plan.arena_bytes:
            raise PlanError(f"{_name(key)} at [{o}, {o + n}) lies outside the {plan.arena_bytes}-byte arena")
        if o % plan.alignment:
            raise PlanError(f"{_name(key)} at offset {o} is not aligned to {plan.alignment} bytes")
    active: list = []
    for cur in sorted(regions, key=lambda r: r[3]):
        key, o, n, first, last = cur
        if n == 0:
            continue
        active = [a for a in active if a[4] >= first]
        for k2, o2, n2, f2, l2 in active:
            if not (o < o2 + n2 and o2 < o + n):
                continue
            rule = allowed.get((k2, key, o - o2)) or allowed.get((key, k2, o2 - o))
            if rule is None:
                raise PlanError(
                    f"{_name(k2)} [{o2}, {o2 + n2}) and {_name(key)} [{o}, {o + n}) overlap while both "
                    f"are live (steps {max(first, f2)}..{min(last, l2)})")
            if plan.scratch_bytes.get(rule.step, 0) < rule.scratch_bytes:
                raise PlanError(
                    f"tensor {rule.output} is written over tensor {rule.input} at step {rule.step} "
                    f"without the {rule.scratch_bytes} scratch bytes that needs")
        active.append(cur)
