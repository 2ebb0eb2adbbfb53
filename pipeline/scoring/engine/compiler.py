"""Compiling a forest to native code that predicts exactly as ``Booster.predict`` does.

Off-the-shelf tree compilers differ from LightGBM in the last bits or worse
(``../shared/NOTES.md`` has the measurements), so the code is generated here,
on llvmlite, copying LightGBM's own prediction rules:

* a feature value with ``|x| <= kZeroThreshold`` is 0.0 (LightGBM's predictor
  never stores such a value, and -0.0 becomes 0.0 with it);
* numerical splits follow ``Tree::NumericalDecision``: NaN reads as 0.0 unless
  the split's missing type is NaN; missing type zero or NaN sends the missing
  value its default way; otherwise ``x <= threshold`` goes left;
* categorical splits follow ``Tree::CategoricalDecision`` including its
  ``static_cast<int>``: on x86-64 NaN and values beyond the int range become
  INT_MIN and go right, values in (-1, 0) become category 0; aarch64's
  saturating conversion gives NaN category 0 instead;
* scores are summed onto one accumulator per row and class in tree order,
  exactly as ``GBDT::PredictRaw`` does (no partial sums per block of trees);
* the output transform is the objective's ``ConvertOutput``, calling the same
  libm ``exp`` LightGBM calls.

Trees are emitted ten to an LLVM function: compile time grows faster than
linearly with function size, and ten trees keep the optimizer near 12 s for
200 trees of 63 leaves. Code is built for a CPU baseline (``x86-64-v2``, or
generic aarch64), never for the building host, and with no fast-math, so the
target cannot change a result.

This is the branch kernel; ``bitvector`` is the other, usually several times
faster, and ``compile_jobs`` keeps whichever is faster for the model.
Whatever is generated must still pass the exactness gate (``gate.py``)
before it scores a row.
"""

from __future__ import annotations

import functools
import platform
import sys
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm
from llvmlite import ir

from pipeline.scoring.engine import bitvector
from pipeline.scoring.engine.forest import Forest, Node, Tree, parse
from pipeline.scoring.engine.irgen import (
    ENTRY,
    as_lightgbm_reads,
    constant_table,
    entry_type,
    finish_entry,
    loop,
    x86_category,
)

#: Bumped whenever generated code could change: part of every artifact's key.
GENERATOR_VERSION = "3"
TREES_PER_FUNCTION = 10
ROWS_PER_CHUNK = 64
#: Up to this many categories a split compares; beyond, it reads a bit of its bitset.
_CATEGORY_COMPARES = 4

_DOUBLE = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I1 = ir.IntType(1)


@dataclass(frozen=True)
class Target:
    triple: str
    cpu: str

    @property
    def arch(self) -> str:
        return self.triple.split("-", 1)[0]

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.cpu}"


#: The baseline each architecture's workers all have (Fargate's x86 hosts are
#: all x86-64-v2 or better; Graviton needs nothing beyond armv8).
BASELINES = {
    "x86_64": Target("x86_64-unknown-linux-gnu", "x86-64-v2"),
    "aarch64": Target("aarch64-unknown-linux-gnu", "generic"),
}


#: x86-64-v3 (AVX2) lets the bitvector kernel compare 32 rows a vector: 10-20% faster
#: than on v2. A host with these features gets v3 code, any other x86 host v2;
#: the level is part of the artifact's key, so each level's workers use their own.
_X86_64_V3 = ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe", "xsave")
X86_64_V3 = Target("x86_64-unknown-linux-gnu", "x86-64-v3")


@functools.cache
def host_target() -> Target | None:
    """The highest baseline this machine's CPU meets, or None for an unknown architecture.

    A baseline level, never the host's own CPU model: the artifact serves every
    worker of that level. Without fast-math the level cannot change a result
    (FMA is never formed from separate multiplies and adds), and the gate checks it.
    """
    machine = platform.machine().lower()
    baseline = BASELINES.get({"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine))
    if baseline is not None and baseline.arch == "x86_64":
        llvm.initialize_native_target()
        features = llvm.get_host_cpu_features()
        if all(features.get(name, False) for name in _X86_64_V3):
            return X86_64_V3
    return baseline


def compiler_id() -> str:
    """Everything besides the model and target that decides the generated code."""
    major, minor, _ = llvm.llvm_version_info
    return f"gen{GENERATOR_VERSION}-llvmlite{llvmlite.__version__}-llvm{major}.{minor}"


def kernels_for(forest: Forest, target: Target) -> list[str]:
    """The kernels that can predict ``forest`` exactly on ``target``, the bitvector one first."""
    if bitvector.refusal(forest, target.arch) is None:
        return ["bitvector", "branches"]
    return ["branches"]


def scratch_doubles(num_features: int, num_class: int) -> int:
    """Doubles of scratch a calling thread hands the entry point, for either kernel."""
    return max(ROWS_PER_CHUNK * num_features, bitvector.scratch_doubles(num_features, num_class))


def generate(forest: Forest, target: Target, kernel: str = "branches") -> ir.Module:
    """The LLVM module for ``forest``: one exported ``lgbm_predict`` function.

    ``lgbm_predict(x, row_stride, column_stride, out, begin, end, raw, scratch)``
    writes rows ``[begin, end)`` of ``out`` (rows x classes, row-major); ``x``
    is read at ``x[row * row_stride + feature * column_stride]`` (in doubles),
    so row- and column-ordered matrices both work without a copy. ``scratch``
    holds ``scratch_doubles`` doubles, one per calling thread.
    """
    if kernel == "bitvector":
        return bitvector.generate(forest, target.triple)
    module = ir.Module(name="forest")
    module.triple = target.triple
    exp = ir.Function(module, ir.FunctionType(_DOUBLE, [_DOUBLE]), "exp")
    blocks = [
        _block_function(
            module, forest, target, forest.trees[start : start + TREES_PER_FUNCTION], start
        )
        for start in range(0, len(forest.trees), TREES_PER_FUNCTION)
    ]
    _entry_function(module, forest, blocks, exp)
    return module


def compile_object(forest: Forest, target: Target, kernel: str = "branches") -> bytes:
    """An ELF object file with ``lgbm_predict`` for ``target``, from ``kernel``'s code."""
    _initialize()
    machine = llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features="", opt=2, reloc="pic", codemodel="default"
    )
    module = llvm.parse_assembly(str(generate(forest, target, kernel)))
    module.triple = target.triple
    module.data_layout = str(machine.target_data)
    module.verify()
    builder = llvm.create_pass_builder(machine, llvm.create_pipeline_tuning_options(speed_level=2))
    builder.getModulePassManager().run(module, builder)
    return bytes(machine.emit_object(module))


_initialized = False


def _initialize() -> None:
    global _initialized  # noqa: PLW0603 - LLVM's targets are process-wide, set up once
    if not _initialized:
        llvm.initialize_all_targets()
        llvm.initialize_all_asmprinters()
        _initialized = True


# ---- code generation -----------------------------------------------------------------


def _block_function(
    module: ir.Module,
    forest: Forest,
    target: Target,
    trees: tuple[Tree, ...],
    first: int,
) -> ir.Function:
    """``block_i(rows, acc, count)``: add these trees' outputs to ``count`` rows.

    ``rows`` holds the rows' features already as LightGBM reads them,
    ``num_features`` apart, so every node loads from a constant offset.
    """
    pointer = _DOUBLE.as_pointer()
    kind = ir.FunctionType(ir.VoidType(), [pointer, pointer, _I64])
    fn = ir.Function(module, kind, f"block_{first // TREES_PER_FUNCTION}")
    fn.linkage = "internal"
    # Inlined into the entry point, the blocks would make one huge function again.
    fn.attributes.add("noinline")
    rows, acc, count = fn.args
    for arg in (rows, acc):
        arg.add_attribute("noalias")
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    width = ir.Constant(_I64, forest.num_features)
    classes = ir.Constant(_I64, forest.num_class)

    def row(r: ir.Value) -> None:
        row_ptr = builder.gep(rows, [builder.mul(r, width)])
        for offset, tree in enumerate(trees):
            value = _emit_tree(builder, fn, tree, row_ptr, target)
            k = (first + offset) % forest.num_class
            slot = builder.gep(acc, [builder.add(builder.mul(r, classes), ir.Constant(_I64, k))])
            builder.store(builder.fadd(builder.load(slot), value), slot)

    loop(builder, ir.Constant(_I64, 0), count, row)
    builder.ret_void()
    return fn


def _emit_tree(
    builder: ir.IRBuilder, fn: ir.Function, tree: Tree, row: ir.Value, target: Target
) -> ir.Value:
    if not tree.nodes:
        return ir.Constant(_DOUBLE, tree.leaves[0])
    done = fn.append_basic_block("tree.done")
    nodes = [fn.append_basic_block(f"node{i}") for i in range(len(tree.nodes))]
    leaves = [fn.append_basic_block(f"leaf{i}") for i in range(len(tree.leaves))]

    def block(child: int) -> ir.Block:
        return nodes[child] if child >= 0 else leaves[~child]

    builder.branch(nodes[0])
    for node, start in zip(tree.nodes, nodes, strict=True):
        builder.position_at_end(start)
        left, right = block(node.left), block(node.right)
        value = builder.load(builder.gep(row, [ir.Constant(_I64, node.feature)]))
        if node.categorical:
            _categorical(builder, node, value, (left, right), target.arch)
        else:
            _numerical(builder, node, value, left, right)
    builder.position_at_end(done)
    result = builder.phi(_DOUBLE)
    for value, leaf in zip(tree.leaves, leaves, strict=True):
        builder.position_at_end(leaf)
        builder.branch(done)
        result.add_incoming(ir.Constant(_DOUBLE, value), leaf)
    builder.position_at_end(done)
    return result


def _numerical(
    builder: ir.IRBuilder, node: Node, value: ir.Value, left: ir.Block, right: ir.Block
) -> None:
    fn = builder.function
    threshold = ir.Constant(_DOUBLE, node.threshold)
    default = left if node.default_left else right
    if node.missing_type == 0:  # NaN is read as 0.0
        compare = builder.fcmp_unordered if node.threshold >= 0.0 else builder.fcmp_ordered
        builder.cbranch(compare("<=", value, threshold), left, right)
        return
    if node.missing_type == 1:  # NaN is 0.0, and 0.0 is missing
        missing = builder.fcmp_unordered("==", value, ir.Constant(_DOUBLE, 0.0))
    else:  # NaN is missing
        missing = builder.fcmp_unordered("uno", value, value)
    present = fn.append_basic_block("present")
    builder.cbranch(missing, default, present)
    builder.position_at_end(present)
    builder.cbranch(builder.fcmp_ordered("<=", value, threshold), left, right)


def _categorical(
    builder: ir.IRBuilder,
    node: Node,
    value: ir.Value,
    branches: tuple[ir.Block, ir.Block],
    arch: str,
) -> None:
    """``static_cast<int>(x)`` as the target's CPU does it, then the category bitset.

    Computed without branches up to the one that leaves the split: with a
    branch per range check, the optimizer threads jumps across the trees of a
    block that split on the same feature, and ran for most of an hour on
    models with many category splits.
    """
    left, right = branches
    # x86's INT_MIN for NaN and out-of-range values is no category: they go right.
    in_range, category = x86_category(builder, value, _I32)
    goes_left = builder.and_(in_range, _in_categories(builder, node, category))
    if arch == "aarch64":  # fcvtzs: NaN converts to 0
        nan = builder.fcmp_unordered("uno", value, value)
        if node.missing_type == 2:  # NaN is missing, and missing goes right
            nan_left = ir.Constant(ir.IntType(1), 0)
        else:
            nan_left = _in_categories(builder, node, ir.Constant(_I32, 0))
        goes_left = builder.select(nan, nan_left, goes_left)
    builder.cbranch(goes_left, left, right)


def _in_categories(builder: ir.IRBuilder, node: Node, category: ir.Value) -> ir.Value:
    """Whether ``category`` is in the split's set: a compare or two, else a bit of its bitset.

    A ``switch`` per split, one case per category, compiled slowly on models
    with many bitset splits; the bitset as data costs one load.
    """
    values = node.category_values()
    if len(values) <= _CATEGORY_COMPARES:
        hit = ir.Constant(ir.IntType(1), 0)
        for value in values:
            hit = builder.or_(hit, builder.icmp_signed("==", category, ir.Constant(_I32, value)))
        return hit
    table = constant_table(builder.module, "cats", _I32, [w & 0xFFFFFFFF for w in node.categories])
    index = builder.lshr(category, ir.Constant(_I32, 5))
    last = ir.Constant(_I32, len(node.categories) - 1)
    inside = builder.icmp_unsigned("<=", index, last)
    slot = builder.gep(table, [ir.Constant(_I32, 0), builder.select(inside, index, last)])
    word = builder.load(slot)
    bit = builder.trunc(builder.lshr(word, builder.and_(category, ir.Constant(_I32, 31))), _I1)
    return builder.and_(inside, bit)


def _entry_function(
    module: ir.Module, forest: Forest, blocks: list[ir.Function], exp: ir.Function
) -> None:
    fn = ir.Function(module, entry_type(), ENTRY)
    x, rs, cs, out, begin, end, raw, scratch = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    classes = ir.Constant(_I64, forest.num_class)
    width = ir.Constant(_I64, forest.num_features)
    zero = ir.Constant(_DOUBLE, 0.0)

    def clear(i: ir.Value) -> None:
        builder.store(zero, builder.gep(out, [i]))

    loop(builder, builder.mul(begin, classes), builder.mul(end, classes), clear)

    def chunk(start: ir.Value) -> None:
        stop = builder.add(start, ir.Constant(_I64, ROWS_PER_CHUNK))
        stop = builder.select(builder.icmp_signed("<", stop, end), stop, end)
        count = builder.sub(stop, start)

        def load_row(i: ir.Value) -> None:
            source = builder.gep(x, [builder.mul(builder.add(start, i), rs)])
            target = builder.gep(scratch, [builder.mul(i, width)])

            def load_feature(j: ir.Value) -> None:
                value = builder.load(builder.gep(source, [builder.mul(j, cs)]))
                builder.store(as_lightgbm_reads(builder, value), builder.gep(target, [j]))

            loop(builder, ir.Constant(_I64, 0), width, load_feature)

        loop(builder, ir.Constant(_I64, 0), count, load_row)
        acc = builder.gep(out, [builder.mul(start, classes)])
        for block in blocks:
            builder.call(block, [scratch, acc, count])

    loop(builder, begin, end, chunk, step=ROWS_PER_CHUNK)
    finish_entry(builder, forest, exp=exp, out=out, rows=(begin, end), raw=raw)


def main(argv: list[str]) -> int:
    """``python -m pipeline.scoring.engine.compiler TRIPLE CPU KERNEL``: a model's text on
    stdin, its object file on stdout; a compile another process can stop."""
    triple, cpu, kernel = argv
    sys.stdout.buffer.write(compile_object(parse(sys.stdin.read()), Target(triple, cpu), kernel))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
