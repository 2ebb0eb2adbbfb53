"""What both kernels' LLVM code shares: its types, a counted loop, the output transform.

The kernels differ in how they find each tree's leaf (``compiler``: a
branch per split; ``bitvector``: masks of many rows at once) and agree on
everything else, which must stay operation for operation what LightGBM does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

from pipeline.scoring.engine.forest import K_ZERO_THRESHOLD, Forest

#: The exported entry point every kernel has, with one signature (see ``compiler.generate``).
ENTRY = "lgbm_predict"

_DOUBLE = ir.DoubleType()
_I64 = ir.IntType(64)
_INT_LIMIT = 2147483648.0


def entry_type() -> ir.FunctionType:
    """``(x, row_stride, column_stride, out, begin, end, raw, scratch)``."""
    pointer = _DOUBLE.as_pointer()
    return ir.FunctionType(
        ir.VoidType(), [pointer, _I64, _I64, pointer, _I64, _I64, ir.IntType(32), pointer]
    )


def as_lightgbm_reads(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """``value`` as LightGBM's predictor keeps it: any ``|x| <= kZeroThreshold`` is 0.0."""
    fabs = builder.module.declare_intrinsic("llvm.fabs", [_DOUBLE])
    threshold = ir.Constant(_DOUBLE, K_ZERO_THRESHOLD)
    tiny = builder.fcmp_ordered("<=", builder.call(fabs, [value]), threshold)
    return builder.select(tiny, ir.Constant(_DOUBLE, 0.0), value)


def x86_category(
    builder: ir.IRBuilder, value: ir.Value, kind: ir.IntType
) -> tuple[ir.Value, ir.Value]:
    """``static_cast<int>(value)`` as x86-64 does it: (whether it is a category, which).

    cvttsd2si gives INT_MIN for NaN and out-of-range values, negative and so no
    category; values in (-1, 0) become category 0. Where it is no category,
    the category returned is 0 and means nothing.
    """
    above = builder.fcmp_ordered(">", value, ir.Constant(_DOUBLE, -1.0))
    below = builder.fcmp_ordered("<", value, ir.Constant(_DOUBLE, _INT_LIMIT))
    in_range = builder.and_(above, below)
    category = builder.fptosi(builder.select(in_range, value, ir.Constant(_DOUBLE, 0.0)), kind)
    return in_range, category


def constant_table(
    module: ir.Module, name: str, kind: ir.Type, values: Sequence[int] | Sequence[float]
) -> ir.GlobalVariable:
    """A read-only array of ``values`` in the module (one zero if there are none)."""
    array = ir.ArrayType(kind, max(1, len(values)))
    table = ir.GlobalVariable(module, array, module.get_unique_name(name))
    table.global_constant = True
    table.linkage = "internal"
    table.initializer = ir.Constant(array, list(values) or [0])
    return table


def finish_entry(
    builder: ir.IRBuilder,
    forest: Forest,
    *,
    exp: ir.Function,
    out: ir.Value,
    rows: tuple[ir.Value, ir.Value],
    raw: ir.Value,
) -> None:
    """Unless ``raw``, rows ``[begin, end)`` of ``out`` (rows x classes) through the
    objective's transform; then return."""
    fn = builder.function
    transformed = fn.append_basic_block("transform")
    finished = fn.append_basic_block("finished")
    builder.cbranch(builder.icmp_signed("!=", raw, ir.Constant(raw.type, 0)), finished, transformed)
    builder.position_at_end(transformed)
    classes = ir.Constant(_I64, forest.num_class)

    def row(r: ir.Value) -> None:
        base = builder.mul(r, classes)
        slots = [
            builder.gep(out, [builder.add(base, ir.Constant(_I64, k))])
            for k in range(forest.num_class)
        ]
        transform(builder, forest, exp, slots)

    loop(builder, *rows, row)
    builder.branch(finished)
    builder.position_at_end(finished)
    builder.ret_void()


def transform(
    builder: ir.IRBuilder, forest: Forest, exp: ir.Function, slots: list[ir.Value]
) -> None:
    """The objective's ``ConvertOutput``, operation for operation."""
    one = ir.Constant(_DOUBLE, 1.0)
    kind = forest.transform
    if kind == "identity":
        return
    values = [builder.load(slot) for slot in slots]
    if kind == "sigmoid":  # 1.0 / (1.0 + exp(-sigmoid * x))
        scale = ir.Constant(_DOUBLE, -forest.sigmoid)
        results = [
            builder.fdiv(one, builder.fadd(one, builder.call(exp, [builder.fmul(scale, v)])))
            for v in values
        ]
    elif kind == "exp":
        results = [builder.call(exp, [v]) for v in values]
    elif kind == "signed_square":  # Common::Sign(x) * x * x
        zero = ir.Constant(_DOUBLE, 0.0)
        results = []
        for v in values:
            positive = builder.uitofp(builder.fcmp_ordered(">", v, zero), _DOUBLE)
            negative = builder.uitofp(builder.fcmp_ordered("<", v, zero), _DOUBLE)
            results.append(builder.fmul(builder.fmul(builder.fsub(positive, negative), v), v))
    else:  # softmax: max, exp(x - max) summed in order, then each divided by the sum
        top = values[0]
        for v in values[1:]:  # std::max(v, top) is (v < top) ? top : v
            top = builder.select(builder.fcmp_ordered("<", v, top), top, v)
        exps = [builder.call(exp, [builder.fsub(v, top)]) for v in values]
        total = ir.Constant(_DOUBLE, 0.0)
        for e in exps:
            total = builder.fadd(total, e)
        results = [builder.fdiv(e, total) for e in exps]
    for slot, result in zip(slots, results, strict=True):
        builder.store(result, slot)


def loop(
    builder: ir.IRBuilder,
    start: ir.Value,
    stop: ir.Value,
    body: Callable[[ir.Value], None],
    step: int = 1,
) -> None:
    before = builder.block
    fn = builder.function
    check = fn.append_basic_block("loop.check")
    inside = fn.append_basic_block("loop.body")
    after = fn.append_basic_block("loop.end")
    builder.branch(check)
    builder.position_at_end(check)
    index = builder.phi(_I64)
    index.add_incoming(start, before)
    builder.cbranch(builder.icmp_signed("<", index, stop), inside, after)
    builder.position_at_end(inside)
    body(index)
    index.add_incoming(builder.add(index, ir.Constant(_I64, step)), builder.block)
    builder.branch(check)
    builder.position_at_end(after)
