"""The SHAP kernel: one LLVM function over a model's tables (``shap_tables``), any model.

For a row, a leaf's entry is *hot* when the row takes all of the entry's
splits the path's way. With ``f_j(t) = z_j (1 - t) + [hot_j] t`` and
``G(t) = prod_j f_j(t)`` over the leaf's entries, TreeSHAP's Shapley sum over
subsets is an integral (the weight |S|!(d-|S|-1)!/d! is a Beta integral)::

    phi_i += v_leaf * ([hot_i] - z_i) * integral_0^1 prod_{j != i} f_j(t) dt
           = v_leaf * (1 - z_i) * integral G(t) / (z_i + (1 - z_i) t) dt   (hot i)
           = -v_leaf * integral G(t) / (1 - t) dt                         (cold i)

The integrands are polynomials of degree d - 1, so Gauss-Legendre with
ceil(d / 2) points is exact, and every factor lies in [0, 1]: nothing
cancels. All cold entries of a leaf share one value; a leaf costs
O(d * points). Rows go through ``LANES`` at a time, one per SIMD lane, so
each leaf's tables are read once per block; the per-point divisions are
precomputed in the tables.

Splits are decided as ``Tree::Decision`` decides them, with the compiled
forest's rules (kZeroThreshold, NaN as 0.0 unless missing is NaN, the
x86 ``static_cast<int>`` of categorical values), so the kernel also yields
each tree's exit leaf; the gate (``explainer.verify``) compares both with
LightGBM. The kernel is built for the host CPU with no fast-math: the
target changes no result.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from dataclasses import dataclass
from typing import Any

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from pipeline.scoring.engine.forest import K_ZERO_THRESHOLD
from pipeline.scoring.engine.shap_tables import TABLES

#: Rows a pass of the kernel takes at once: SIMD lanes, sharing each leaf's table reads.
LANES = 8
ENTRY = "lgbm_explain"
#: The sizes array: features, classes, trees, max entries, max nodes.
SIZES = 5
CONTRIBUTIONS, LEAVES = 1, 2

_DOUBLE = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I8 = ir.IntType(8)
_I1 = ir.IntType(1)
_VD = ir.VectorType(_DOUBLE, LANES)
_VB = ir.VectorType(_I8, LANES)
_VM = ir.VectorType(_I1, LANES)
_INT_LIMIT = 2147483648.0
SIGNATURE = ctypes.CFUNCTYPE(
    None,
    ctypes.c_void_p,  # x
    ctypes.c_int64,  # row stride (doubles)
    ctypes.c_int64,  # column stride (doubles)
    ctypes.c_int64,  # begin
    ctypes.c_int64,  # end
    ctypes.c_void_p,  # phi: rows x classes x (features + 1), zeroed
    ctypes.c_void_p,  # leaves: rows x trees, int32
    ctypes.c_int64,  # flags: CONTRIBUTIONS | LEAVES
    ctypes.c_void_p,  # the tables' addresses, in TABLES order
    ctypes.c_void_p,  # the sizes
    ctypes.c_void_p,  # scratch doubles: (features + max entries + 1) * LANES
    ctypes.c_void_p,  # scratch bytes: (max entries + max nodes + 1) * LANES
)

_lock = threading.Lock()
_built: tuple[Any, Any] | None = None  # (the engine, kept alive; the ctypes function)


def function() -> Any:
    """The kernel, compiled for this CPU on first use (about 0.3 s), then shared."""
    global _built  # noqa: PLW0603 - one kernel per process
    with _lock:
        if _built is None:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            machine = llvm.Target.from_default_triple().create_target_machine(
                cpu=llvm.get_host_cpu_name(),
                features=llvm.get_host_cpu_features().flatten(),
                opt=3,
            )
            module = llvm.parse_assembly(str(generate(platform.machine().lower())))
            module.verify()
            tuning = llvm.create_pipeline_tuning_options(speed_level=3)
            passes = llvm.create_pass_builder(machine, tuning)
            passes.getModulePassManager().run(module, passes)
            engine = llvm.create_mcjit_compiler(module, machine)
            engine.finalize_object()
            _built = (engine, SIGNATURE(engine.get_function_address(ENTRY)))
        return _built[1]


class _Builder:
    """An IR builder with the few shapes the kernel needs: loops, locals, vectors."""

    def __init__(self, fn: ir.Function) -> None:
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def loop(self, start: ir.Value, stop: ir.Value, body: Any, step: int = 1) -> None:
        b = self.b
        before = b.block
        check = self.fn.append_basic_block("loop.check")
        inside = self.fn.append_basic_block("loop.body")
        after = self.fn.append_basic_block("loop.end")
        b.branch(check)
        b.position_at_end(check)
        index = b.phi(start.type)
        index.add_incoming(start, before)
        b.cbranch(b.icmp_signed("<", index, stop), inside, after)
        b.position_at_end(inside)
        body(index)
        index.add_incoming(b.add(index, ir.Constant(start.type, step)), b.block)
        b.branch(check)
        b.position_at_end(after)

    def var(self, kind: ir.Type, value: ir.Value) -> ir.Value:
        """A mutable local: an alloca the optimizer turns into a register."""
        with self.b.goto_entry_block():
            slot = self.b.alloca(kind)
        self.b.store(value, slot)
        return slot

    def at(self, base: ir.Value, index: ir.Value) -> ir.Value:
        return self.b.load(self.b.gep(base, [index]))

    def index(self, table: ir.Value, index: ir.Value) -> ir.Value:
        """An int32 table's entry as an int64 index."""
        return self.b.sext(self.at(table, index), _I64)

    def vector(self, base: ir.Value, lane_block: ir.Value, kind: ir.VectorType) -> ir.Value:
        """The pointer to the ``kind`` vector of block ``lane_block`` of ``base``."""
        offset = self.b.mul(lane_block, ir.Constant(_I64, LANES))
        return self.b.bitcast(self.b.gep(base, [offset]), kind.as_pointer())

    def splat(self, value: ir.Value, kind: ir.VectorType) -> ir.Value:
        b = self.b
        one = b.insert_element(ir.Constant(kind, ir.Undefined), value, ir.Constant(_I32, 0))
        mask = ir.Constant(ir.VectorType(_I32, kind.count), [0] * kind.count)
        return b.shuffle_vector(one, ir.Constant(kind, ir.Undefined), mask)

    def hot_lanes(self, hot: ir.Value, entry: ir.Value) -> ir.Value:
        return self.b.trunc(self.b.load(self.vector(hot, entry, _VB), align=1), _VM)


@dataclass
class _Kernel:
    """The function's values that every part of the kernel uses."""

    f: _Builder
    t: dict[str, ir.Value]
    features: ir.Value
    width: ir.Value
    phi: ir.Value
    leaves_out: ir.Value
    trees: ir.Value
    block_x: ir.Value  # the block's features, feature-major: one lane per row
    sums: ir.Value  # per entry, a vector of hot sums
    hot: ir.Value  # per entry, its hot lanes
    decisions: ir.Value  # per node, its left-going lanes
    arch: str


def generate(arch: str) -> ir.Module:
    """``lgbm_explain``: see ``SIGNATURE`` for its arguments."""
    module = ir.Module(name="explainer")
    module.triple = llvm.get_process_triple()
    pd = _DOUBLE.as_pointer()
    p64 = _I64.as_pointer()
    kind = ir.FunctionType(
        ir.VoidType(),
        [pd, _I64, _I64, _I64, _I64, pd, _I32.as_pointer(), _I64, p64, p64, pd, _I8.as_pointer()],
    )
    fn = ir.Function(module, kind, ENTRY)
    x, rs, cs, begin, end, phi, leaves_out, flags, addresses, sizes, scratch, scratch8 = fn.args
    f = _Builder(fn)
    b = f.b
    types = {np.dtype(np.int32): _I32, np.dtype(np.uint32): _I32, np.dtype(np.float64): _DOUBLE}
    t: dict[str, ir.Value] = {}
    for i, (name, dtype) in enumerate(TABLES):
        address = b.load(b.gep(addresses, [ir.Constant(_I64, i)]))
        t[name] = b.inttoptr(address, types[np.dtype(dtype)].as_pointer())
    features, classes, trees, max_entries, _ = (
        b.load(b.gep(sizes, [ir.Constant(_I64, i)])) for i in range(SIZES)
    )
    lanes = ir.Constant(_I64, LANES)
    k = _Kernel(
        f=f,
        t=t,
        features=features,
        width=b.mul(classes, b.add(features, ir.Constant(_I64, 1))),
        phi=phi,
        leaves_out=leaves_out,
        trees=trees,
        block_x=scratch,
        sums=b.gep(scratch, [b.mul(features, lanes)]),
        hot=scratch8,
        decisions=b.gep(scratch8, [b.mul(max_entries, lanes)]),
        arch=arch,
    )
    k0 = ir.Constant(_I64, 0)
    want_contrib = b.icmp_signed("!=", b.and_(flags, ir.Constant(_I64, CONTRIBUTIONS)), k0)
    want_leaves = b.icmp_signed("!=", b.and_(flags, ir.Constant(_I64, LEAVES)), k0)

    def block(start: ir.Value) -> None:
        left = b.sub(end, start)
        valid = b.select(b.icmp_signed("<", left, lanes), left, lanes)
        _load_block(k, x, (rs, cs), start, valid)

        def tree(ti: ir.Value) -> None:
            node_begin = f.index(t["tree_node_begin"], ti)
            node_count = f.index(t["tree_node_count"], ti)
            f.loop(k0, node_count, lambda n: _decide(k, b.add(node_begin, n), n))
            with b.if_then(want_leaves):
                _exit_leaves(k, ti, (start, valid), node_begin, node_count)
            with b.if_then(want_contrib):
                _tree_shap(k, ti, (start, valid))

        f.loop(k0, trees, tree)

    f.loop(begin, end, block, step=LANES)
    b.ret_void()
    return module


def _load_block(
    k: _Kernel, x: ir.Value, strides: tuple[ir.Value, ir.Value], start: ir.Value, valid: ir.Value
) -> None:
    """The block's rows into lanes (a short last block repeats its last row), as LightGBM
    reads them: ``|x| <= kZeroThreshold`` is 0.0."""
    f, b = k.f, k.f.b
    rs, cs = strides
    k0, k1 = ir.Constant(_I64, 0), ir.Constant(_I64, 1)
    fabs = b.module.declare_intrinsic("llvm.fabs", [_DOUBLE])

    def lane(r: ir.Value) -> None:
        row = b.add(start, b.select(b.icmp_signed("<", r, valid), r, b.sub(valid, k1)))
        source = b.gep(x, [b.mul(row, rs)])

        def load(j: ir.Value) -> None:
            value = b.load(b.gep(source, [b.mul(j, cs)]))
            limit = ir.Constant(_DOUBLE, K_ZERO_THRESHOLD)
            tiny = b.fcmp_ordered("<=", b.call(fabs, [value]), limit)
            slot = b.gep(k.block_x, [b.add(b.mul(j, ir.Constant(_I64, LANES)), r)])
            b.store(b.select(tiny, ir.Constant(_DOUBLE, 0.0), value), slot)

        f.loop(k0, k.features, load)

    f.loop(k0, ir.Constant(_I64, LANES), lane)


def _decide(k: _Kernel, g: ir.Value, n: ir.Value) -> None:
    """Store, per lane, whether its row goes left at (global) node ``g``, the tree's ``n``."""
    f, b = k.f, k.f.b
    feature = f.index(k.t["node_feature"], g)
    kind = f.at(k.t["node_type"], g)
    categorical = b.trunc(b.and_(kind, ir.Constant(_I32, 1)), _I1)
    out = f.vector(k.decisions, n, _VB)
    values = b.load(f.vector(k.block_x, feature, _VD), align=8)
    with b.if_else(categorical) as (on_category, on_number):
        with on_category:
            result = ir.Constant(_VB, [0] * LANES)
            for lane in range(LANES):
                value = b.extract_element(values, ir.Constant(_I32, lane))
                left = _categorical(k, g, kind, value)
                result = b.insert_element(result, b.zext(left, _I8), ir.Constant(_I32, lane))
            b.store(result, out, align=1)
        with on_number:
            b.store(b.zext(_numerical(k, g, kind, values), _VB), out, align=1)


def _numerical(k: _Kernel, g: ir.Value, kind: ir.Value, values: ir.Value) -> ir.Value:
    """NaN reads 0.0 unless missing is NaN; a missing zero or NaN goes the default way."""
    f, b = k.f, k.f.b

    def flag(test: ir.Value) -> ir.Value:
        return f.splat(test, _VM)

    missing_type = b.and_(b.lshr(kind, ir.Constant(_I32, 2)), ir.Constant(_I32, 3))
    default_left = b.icmp_signed("!=", b.and_(kind, ir.Constant(_I32, 2)), ir.Constant(_I32, 0))
    none_type = flag(b.icmp_signed("==", missing_type, ir.Constant(_I32, 0)))
    zero_type = flag(b.icmp_signed("==", missing_type, ir.Constant(_I32, 1)))
    nan_type = flag(b.icmp_signed("==", missing_type, ir.Constant(_I32, 2)))
    zeros = ir.Constant(_VD, [0.0] * LANES)
    is_nan = b.fcmp_unordered("uno", values, values)
    as_read = b.select(b.and_(is_nan, b.not_(nan_type)), zeros, values)
    missing = b.or_(
        b.and_(zero_type, b.fcmp_ordered("==", as_read, zeros)), b.and_(nan_type, is_nan)
    )
    compared = b.fcmp_ordered("<=", as_read, f.splat(f.at(k.t["node_threshold"], g), _VD))
    chosen = b.select(missing, flag(default_left), compared)
    return b.select(none_type, compared, chosen)


def _categorical(k: _Kernel, g: ir.Value, kind: ir.Value, value: ir.Value) -> ir.Value:
    """``static_cast<int>``, then the bitset (x86: NaN and out-of-range values go right)."""
    b = k.f.b
    above = b.fcmp_ordered(">", value, ir.Constant(_DOUBLE, -1.0))
    below = b.fcmp_ordered("<", value, ir.Constant(_DOUBLE, _INT_LIMIT))
    in_range = b.and_(above, below)
    category = b.fptosi(b.select(in_range, value, ir.Constant(_DOUBLE, 0.0)), _I32)
    goes_left = b.and_(in_range, _in_bitset(k, g, category))
    if k.arch in {"aarch64", "arm64"}:  # fcvtzs: NaN converts to 0
        missing_type = b.and_(b.lshr(kind, ir.Constant(_I32, 2)), ir.Constant(_I32, 3))
        nan_type = b.icmp_signed("==", missing_type, ir.Constant(_I32, 2))
        nan_left = b.and_(b.not_(nan_type), _in_bitset(k, g, ir.Constant(_I32, 0)))
        goes_left = b.select(b.fcmp_unordered("uno", value, value), nan_left, goes_left)
    return goes_left


def _in_bitset(k: _Kernel, g: ir.Value, category: ir.Value) -> ir.Value:
    f, b = k.f, k.f.b
    words = f.at(k.t["node_cat_words"], g)
    index = b.lshr(category, ir.Constant(_I32, 5))
    inside = b.icmp_unsigned("<", index, words)
    safe = b.select(inside, index, ir.Constant(_I32, 0))
    word = f.at(k.t["cat_words"], b.add(f.index(k.t["node_cat_begin"], g), b.zext(safe, _I64)))
    bit = b.trunc(b.lshr(word, b.and_(category, ir.Constant(_I32, 31))), _I1)
    return b.and_(inside, bit)


def _exit_leaves(
    k: _Kernel,
    ti: ir.Value,
    rows: tuple[ir.Value, ir.Value],
    node_begin: ir.Value,
    node_count: ir.Value,
) -> None:
    """Each row's walk from the root by the stored decisions: the leaf reached."""
    f, b = k.f, k.f.b
    start, valid = rows
    has_nodes = b.icmp_signed(">", node_count, ir.Constant(_I64, 0))

    def lane(r: ir.Value) -> None:
        node = f.var(_I32, ir.Constant(_I32, 0))
        check = f.fn.append_basic_block("walk.check")
        step = f.fn.append_basic_block("walk.step")
        done = f.fn.append_basic_block("walk.done")
        b.cbranch(has_nodes, check, done)
        b.position_at_end(check)
        current = b.load(node)
        b.cbranch(b.icmp_signed(">=", current, ir.Constant(_I32, 0)), step, done)
        b.position_at_end(step)
        local = b.sext(current, _I64)
        g = b.add(node_begin, local)
        went = f.at(k.decisions, b.add(b.mul(local, ir.Constant(_I64, LANES)), r))
        left = b.icmp_signed("!=", went, ir.Constant(_I8, 0))
        b.store(b.select(left, f.at(k.t["node_left"], g), f.at(k.t["node_right"], g)), node)
        b.branch(check)
        b.position_at_end(done)
        # A one-leaf tree never moved from 0: leaf 0; else the walk ended on ~leaf.
        reached = b.xor(b.load(node), ir.Constant(_I32, -1))
        leaf = b.select(has_nodes, reached, ir.Constant(_I32, 0))
        b.store(leaf, b.gep(k.leaves_out, [b.add(b.mul(b.add(start, r), k.trees), ti)]))

    f.loop(ir.Constant(_I64, 0), valid, lane)


def _tree_shap(k: _Kernel, ti: ir.Value, rows: tuple[ir.Value, ir.Value]) -> None:
    """Add one tree's SHAP values for the block's rows to their class's columns."""
    f, b, t = k.f, k.f.b, k.t
    k0 = ir.Constant(_I64, 0)
    column0 = b.mul(f.index(t["tree_class"], ti), b.add(k.features, ir.Constant(_I64, 1)))
    leaf_begin = f.index(t["tree_leaf_begin"], ti)
    cold = f.var(_VD, ir.Constant(_VD, [0.0] * LANES))

    def leaf(li: ir.Value) -> None:
        gl = b.add(leaf_begin, li)
        entries = (f.index(t["leaf_entry_begin"], gl), f.index(t["leaf_entry_count"], gl))
        f.loop(k0, entries[1], lambda e: _classify(k, b.add(entries[0], e), e))
        _quadrature(k, entries, cold)
        value = f.at(t["leaf_value"], gl)
        _scatter(k, entries, value=value, cold=b.load(cold), column0=column0, rows=rows)

    f.loop(k0, f.index(t["tree_leaf_count"], ti), leaf)


def _classify(k: _Kernel, ge: ir.Value, e: ir.Value) -> None:
    """Entry ``e``'s hot lanes: rows that take all of its splits the path's way."""
    f, b, t = k.f, k.f.b, k.t
    cond_begin = f.index(t["entry_cond_begin"], ge)
    taken = f.var(_VM, ir.Constant(_VM, [1] * LANES))

    def condition(c: ir.Value) -> None:
        gc = b.add(cond_begin, c)
        went = b.load(f.vector(k.decisions, f.index(t["cond_node"], gc), _VB), align=1)
        wants = f.splat(b.trunc(f.at(t["cond_left"], gc), _I8), _VB)
        b.store(b.and_(b.load(taken), b.icmp_unsigned("==", went, wants)), taken)

    f.loop(ir.Constant(_I64, 0), f.index(t["entry_cond_count"], ge), condition)
    b.store(b.zext(b.load(taken), _VB), f.vector(k.hot, e, _VB), align=1)
    b.store(ir.Constant(_VD, [0.0] * LANES), f.vector(k.sums, e, _VD), align=8)


def _quadrature(k: _Kernel, entries: tuple[ir.Value, ir.Value], cold: ir.Value) -> None:
    """Per point t: G(t) over the leaf's entries, into the cold sum and each entry's sum."""
    f, b, t = k.f, k.f.b, k.t
    entry_begin, count = entries
    k0, k1, k2 = (ir.Constant(_I64, v) for v in (0, 1, 2))
    points = b.sdiv(b.add(count, k1), k2)
    offset = b.sdiv(b.mul(points, b.sub(points, k1)), k2)
    b.store(ir.Constant(_VD, [0.0] * LANES), cold)
    product = f.var(_VD, ir.Constant(_VD, [1.0] * LANES))

    def point(q: ir.Value) -> None:
        gq = b.add(offset, q)
        s_q = f.at(t["gauss_s"], gq)
        b.store(ir.Constant(_VD, [1.0] * LANES), product)

        def multiply(e: ir.Value) -> None:
            ge = b.add(entry_begin, e)
            hot = f.at(t["entry_a"], b.add(f.index(t["entry_q_begin"], ge), q))
            cold_factor = b.fmul(f.at(t["entry_zero"], ge), s_q)
            chosen = b.select(f.hot_lanes(k.hot, e), f.splat(hot, _VD), f.splat(cold_factor, _VD))
            b.store(b.fmul(b.load(product), chosen), product)

        f.loop(k0, count, multiply)
        whole = b.load(product)
        weight = f.splat(f.at(t["gauss_cw"], gq), _VD)
        b.store(b.fadd(b.load(cold), b.fmul(weight, whole)), cold)

        def share(e: ir.Value) -> None:
            ge = b.add(entry_begin, e)
            m = f.at(t["entry_m"], b.add(f.index(t["entry_q_begin"], ge), q))
            slot = f.vector(k.sums, e, _VD)
            added = b.fadd(b.load(slot, align=8), b.fmul(f.splat(m, _VD), whole))
            b.store(added, slot, align=8)

        f.loop(k0, count, share)

    f.loop(k0, points, point)


def _scatter(
    k: _Kernel,
    entries: tuple[ir.Value, ir.Value],
    *,
    value: ir.Value,
    cold: ir.Value,
    column0: ir.Value,
    rows: tuple[ir.Value, ir.Value],
) -> None:
    """Each entry's share, hot or cold per lane, added to its feature's column of each row."""
    f, b, t = k.f, k.f.b, k.t
    entry_begin, count = entries
    start, valid = rows
    negative = b.fsub(ir.Constant(_DOUBLE, 0.0), value)
    cold_share = b.fmul(f.splat(negative, _VD), cold)

    def add(e: ir.Value) -> None:
        ge = b.add(entry_begin, e)
        scale = b.fmul(value, b.fsub(ir.Constant(_DOUBLE, 1.0), f.at(t["entry_zero"], ge)))
        sums = b.load(f.vector(k.sums, e, _VD), align=8)
        shares = b.select(f.hot_lanes(k.hot, e), b.fmul(f.splat(scale, _VD), sums), cold_share)
        column = b.add(column0, f.index(t["entry_feature"], ge))

        def lane(r: ir.Value) -> None:
            slot = b.gep(k.phi, [b.add(b.mul(b.add(start, r), k.width), column)])
            b.store(b.fadd(b.load(slot), b.extract_element(shares, r)), slot)

        f.loop(ir.Constant(_I64, 0), valid, lane)

    f.loop(ir.Constant(_I64, 0), count, add)
