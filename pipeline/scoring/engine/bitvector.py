"""The bitvector kernel: every split of a tree decided for 256 rows at once, without a branch.

The branch kernel (``compiler``) walks each row down each tree; about half
its splits go the way the CPU did not guess, and those misses are most of its
time. Here a block of rows is prepared once: each feature value becomes its
rank among the thresholds the forest splits that feature on (one byte; for a
categorical feature, its category's code), with bit masks of the rows where
it is NaN or 0.0. Then, per tree, in node order:

* a split's "goes left" mask is one vector compare of the block's ranks with
  the split's rank (``x <= t`` exactly when fewer thresholds than ``t``'s own
  rank lie below ``x``), the NaN and zero rows taking their default ways;
* a node's reach mask splits into its children's (parents come before
  children in LightGBM's numbering), so each leaf ends with the mask of
  the rows that exit there;
* the exit leaf's number comes out in bit slices (bit ``b`` of the row's leaf
  is set where a leaf with that bit reaches it), turned into one byte a row,
  and the leaf's value is added to each row's sum in tree order, exactly as
  ``GBDT::PredictRaw`` adds it.

Nothing rounds differently from LightGBM (``bench/kernels.py`` and the gate
check this bit for bit), but the kernel has limits: at most 256 leaves a tree,
255 distinct thresholds or named categories a feature, and categorical splits
on x86-64 only. A forest past them stays on the branch kernel (``refusal``
says why). ``lgbm_leaves`` gives
the exit leaves themselves, as ``Booster.predict(pred_leaf=True)`` does.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from llvmlite import ir

from pipeline.scoring.engine.forest import Forest, Node
from pipeline.scoring.engine.irgen import (
    ENTRY,
    as_lightgbm_reads,
    constant_table,
    entry_type,
    finish_entry,
    loop,
    x86_category,
)

#: The exported ``lgbm_leaves(x, row_stride, column_stride, out, begin, end, scratch)``:
#: ``out`` (rows x trees, int32) gets each tree's exit leaf.
LEAVES_ENTRY = "lgbm_leaves"
#: Rows a block, four 64-bit words a mask: on the 200 x 63 model 64 rows ran at 0.7x
#: and 128 at 0.9x the speed of 256; 512 was no faster.
ROWS = 256
WORDS = ROWS // 64
#: Leaf numbers are one byte; a forest's leaves take as many bits as its largest tree needs.
MAX_LEAVES = 256
#: A rank is one byte, and one slot above the last threshold must stay free.
MAX_THRESHOLDS = 255
_SEARCH = 256
#: Bytes of the table from a category to its code, over all categorical features.
MAX_CATEGORY_TABLE = 1 << 20
#: A node's child slot: a node's index in its tree, or this plus a leaf's.
_LEAF_SLOT = MAX_LEAVES

_DOUBLE = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I8 = ir.IntType(8)
_BYTES = ir.VectorType(_I8, 32)


def refusal(forest: Forest, arch: str = "x86_64") -> str | None:
    """Why the bitvector kernel cannot predict ``forest`` on ``arch``, or None if it can."""
    return next(_refusals(forest, arch), None)


def _refusals(forest: Forest, arch: str) -> Iterator[str]:
    for number, tree in enumerate(forest.trees):
        if len(tree.leaves) > MAX_LEAVES:
            yield f"tree {number} has {len(tree.leaves)} leaves (at most {MAX_LEAVES})"
        for index, node in enumerate(tree.nodes):
            if any(0 <= child <= index for child in (node.left, node.right)):
                yield f"tree {number} numbers a child before its parent"
    thresholds, categories = forest.thresholds, forest.categories
    if categories and arch != "x86_64":
        yield f"categorical splits are decided the x86-64 way only (not {arch})"
    for feature in sorted(thresholds.keys() & categories.keys()):
        yield f"feature {feature} has both numerical and categorical splits"
    counts = [("thresholds", f, len(v)) for f, v in thresholds.items()]
    counts += [("categories", f, len(v)) for f, v in categories.items()]
    for kind, feature, count in sorted(counts, key=lambda c: c[1]):
        if count > MAX_THRESHOLDS:
            yield f"feature {feature} has {count} {kind} (at most {MAX_THRESHOLDS})"
    table = sum(max(named, default=0) + 1 for named in categories.values())
    if table > MAX_CATEGORY_TABLE:
        yield f"its categories need a table of {table:,} bytes (at most {MAX_CATEGORY_TABLE:,})"


def scratch_doubles(num_features: int, num_class: int) -> int:
    """Doubles of scratch the entry points need per calling thread."""
    return math.ceil(_Layout(num_features, num_class).size / 8)


@dataclass(frozen=True)
class _Layout:
    """Where a block's working data sits in the scratch (byte offsets)."""

    features: int
    classes: int

    # The features' bytes come first: features x ROWS of them, from offset 0.

    @property
    def keep(self) -> int:  # features x WORDS masks: rows that compare (neither NaN nor 0.0)
        return _align(self.features * ROWS)

    @property
    def extra(self) -> int:  # features x 4 x WORDS masks: NaN/zero rows going left, per combo
        return self.keep + 8 * self.features * WORDS

    @property
    def reach(self) -> int:  # 2 x _LEAF_SLOT x WORDS masks: node slots, then leaf slots
        return self.extra + 32 * self.features * WORDS

    @property
    def leaves(self) -> int:  # ROWS bytes: each row's exit leaf in the current tree
        return self.reach + 8 * 2 * _LEAF_SLOT * WORDS

    @property
    def sums(self) -> int:  # classes x ROWS doubles
        return _align(self.leaves + ROWS)

    @property
    def size(self) -> int:
        return self.sums + 8 * self.classes * ROWS


def _align(offset: int) -> int:
    return (offset + 31) // 32 * 32


@dataclass(frozen=True)
class _Tables:
    leaf_bits: int  # bits of the largest leaf number
    used: list[int]  # features some split tests
    categorical: list[int]  # per used feature: 1 if its splits are categorical
    thresholds: list[float]  # _SEARCH a used feature, sorted, padded with +inf
    code_starts: list[int]  # per used feature: where its categories' codes start in ``codes``
    code_counts: list[int]  # per used feature: how many categories ``codes`` has for it
    codes: list[int]  # category -> code (1 + its place among those named; 0: none)
    # Per node, each as the code uses it (offsets into the scratch's arrays, pre-scaled):
    node_bytes: list[int]  # where its feature's bytes start
    node_keep: list[int]  # where its feature's "compares" masks start
    node_extra: list[int]  # where the masks of its feature's NaN/zero rows going left start
    node_left: list[int]  # its children's reach slots
    node_right: list[int]
    node_rank: list[int]  # its threshold's rank
    node_sets: list[int]  # start | count << 32 of its left codes in ``set_codes``; 0: numerical
    set_codes: list[int]
    tree_starts: list[int]
    leaf_values: list[float]  # 2**leaf_bits a tree
    bit_leaves: list[int]  # per tree and leaf bit: the leaves with that bit set
    bit_starts: list[int]


def _tables(forest: Forest) -> _Tables:
    by_feature, named = forest.thresholds, forest.categories
    used = sorted(by_feature.keys() | named.keys())
    position = {feature: u for u, feature in enumerate(used)}
    sorted_thresholds = {f: sorted(values) for f, values in by_feature.items()}
    thresholds: list[float] = []
    code_starts: list[int] = []
    code_counts: list[int] = []
    codes: list[int] = []
    code_of: dict[int, dict[int, int]] = {}
    for feature in used:
        values = sorted_thresholds.get(feature, [])
        thresholds += values + [math.inf] * (_SEARCH - len(values))
        ordered = sorted(named.get(feature, ()))
        code_of[feature] = {category: 1 + place for place, category in enumerate(ordered)}
        code_starts.append(len(codes))
        code_counts.append(ordered[-1] + 1 if ordered else 0)
        codes += [code_of[feature].get(c, 0) for c in range(code_counts[-1])]
    columns: dict[str, list[int]] = {
        name: [] for name in ("bytes", "keep", "extra", "left", "right", "rank", "sets")
    }
    set_codes: list[int] = []
    tree_starts, leaf_values = [0], []
    bit_leaves: list[int] = []
    bit_starts = [0]
    leaf_bits = max(1, (max(len(tree.leaves) for tree in forest.trees) - 1).bit_length())
    for tree in forest.trees:
        for node in tree.nodes:
            u = position[node.feature]
            left, right = (c if c >= 0 else _LEAF_SLOT + ~c for c in (node.left, node.right))
            rank, ways, sets = 0, 0, 0
            if node.categorical:
                left_codes = [code_of[node.feature][c] for c in node.category_values()]
                sets = len(set_codes) | len(left_codes) << 32
                set_codes += left_codes
            else:
                rank = bisect.bisect_left(sorted_thresholds[node.feature], node.threshold)
                nan_left, zero_left = special_ways(node)
                ways = int(nan_left) | int(zero_left) << 1
            for name, value in (
                ("bytes", u * ROWS),
                ("keep", u * WORDS),
                ("extra", (u * 4 + ways) * WORDS),
                ("left", left * WORDS),
                ("right", right * WORDS),
                ("rank", rank),
                ("sets", sets),
            ):
                columns[name].append(value)
        tree_starts.append(len(columns["rank"]))
        leaf_values += list(tree.leaves) + [0.0] * ((1 << leaf_bits) - len(tree.leaves))
        for bit in range(leaf_bits):
            bit_leaves += [leaf for leaf in range(len(tree.leaves)) if leaf >> bit & 1]
            bit_starts.append(len(bit_leaves))
    return _Tables(
        leaf_bits=leaf_bits,
        used=used,
        categorical=[int(f in named) for f in used],
        thresholds=thresholds,
        code_starts=code_starts,
        code_counts=code_counts,
        codes=codes,
        node_bytes=columns["bytes"],
        node_keep=columns["keep"],
        node_extra=columns["extra"],
        node_left=columns["left"],
        node_right=columns["right"],
        node_rank=columns["rank"],
        node_sets=columns["sets"],
        set_codes=set_codes,
        tree_starts=tree_starts,
        leaf_values=leaf_values,
        bit_leaves=bit_leaves,
        bit_starts=bit_starts,
    )


def special_ways(node: Node) -> tuple[bool, bool]:
    """Whether NaN, and 0.0, go left at ``node`` (``Tree::NumericalDecision``).

    NaN reads as 0.0 unless the missing type is NaN; missing type zero sends
    0.0 (and so NaN) its default way, missing type NaN sends NaN its default
    way; any other value compares ``x <= threshold``.
    """
    compares_zero = node.threshold >= 0.0
    nan_left = node.default_left if node.missing_type in (1, 2) else compares_zero
    zero_left = node.default_left if node.missing_type == 1 else compares_zero
    return nan_left, zero_left


def generate(forest: Forest, triple: str) -> ir.Module:
    """The module: ``lgbm_predict`` (see ``compiler.generate``) and ``lgbm_leaves``."""
    tables = _tables(forest)
    module = ir.Module(name="forest-bitvector")
    module.triple = triple
    layout = _Layout(forest.num_features, forest.num_class)
    prepare = _prepare_function(module, tables, layout)
    trees = _trees_function(module, forest, tables, layout)
    exp = ir.Function(module, ir.FunctionType(_DOUBLE, [_DOUBLE]), "exp")
    _predict_function(module, forest=forest, layout=layout, prepare=prepare, trees=trees, exp=exp)
    _leaves_function(module, forest, prepare, trees)
    return module


# ---- code generation -----------------------------------------------------------------


def _at(builder: ir.IRBuilder, table: ir.Value, index: ir.Value) -> ir.Value:
    return builder.load(builder.gep(table, [ir.Constant(_I64, 0), index]))


def _typed(builder: ir.IRBuilder, scratch: ir.Value, offset: ir.Value, kind: ir.Type) -> ir.Value:
    """A ``kind`` pointer ``offset`` bytes into the scratch."""
    return builder.bitcast(builder.gep(scratch, [offset]), kind.as_pointer())


def _const(value: int) -> ir.Constant:
    return ir.Constant(_I64, value)


def _prepare_function(module: ir.Module, tables: _Tables, layout: _Layout) -> ir.Function:
    """``prepare(x, row_stride, column_stride, first, count, scratch)``: a block's bytes and masks.

    A numerical feature's byte is the value's rank among its thresholds, a
    categorical one's the code of its category (0 for one no split names).
    Rows past ``count`` read row ``first`` and count as 0.0: they fill the
    block's vectors, and nothing reads their results.
    """
    byte = _I8.as_pointer()
    kind = ir.FunctionType(ir.VoidType(), [_DOUBLE.as_pointer(), _I64, _I64, _I64, _I64, byte])
    fn = ir.Function(module, kind, "prepare")
    fn.linkage = "internal"
    code = _PrepareCode(module, fn, tables, layout)
    loop(code.builder, _const(0), _const(len(tables.used)), code.feature)
    code.builder.ret_void()
    return fn


class _PrepareCode:
    """The body of ``prepare``: one feature's ``ROWS`` bytes and its NaN and zero masks."""

    def __init__(
        self, module: ir.Module, fn: ir.Function, tables: _Tables, layout: _Layout
    ) -> None:
        self.x, self.rs, self.cs, self.first, self.count, self.scratch = fn.args
        builder = self.builder = ir.IRBuilder(fn.append_basic_block("entry"))
        self.used = constant_table(module, "used", _I64, tables.used)
        self.categorical = constant_table(module, "categorical", _I64, tables.categorical)
        self.search = constant_table(module, "thresholds", _DOUBLE, tables.thresholds)
        self.code_starts = constant_table(module, "code_starts", _I64, tables.code_starts)
        self.code_counts = constant_table(module, "code_counts", _I64, tables.code_counts)
        self.codes = constant_table(module, "codes", _I8, tables.codes)
        self.masks = [builder.alloca(_I64, name=name) for name in ("nan", "zero")]
        self.keep = _typed(builder, self.scratch, _const(layout.keep), _I64)
        self.extra = _typed(builder, self.scratch, _const(layout.extra), _I64)

    def feature(self, u: ir.Value) -> None:
        builder = self.builder
        column = builder.mul(_at(builder, self.used, u), self.cs)
        categorical = builder.icmp_signed("!=", _at(builder, self.categorical, u), _const(0))
        with builder.if_else(categorical) as (by_code, by_rank):
            with by_code:
                start = _at(builder, self.code_starts, u)
                size = _at(builder, self.code_counts, u)
                self.rows(u, column, lambda value: self.category_code(value, start, size))
            with by_rank:
                base = builder.mul(u, _const(_SEARCH))
                self.rows(u, column, lambda value: self.rank(value, base))

    def rows(self, u: ir.Value, column: ir.Value, to_byte: Callable[[ir.Value], ir.Value]) -> None:
        builder = self.builder
        zero = ir.Constant(_DOUBLE, 0.0)
        for word in range(WORDS):
            for mask in self.masks:
                builder.store(_const(0), mask)

            def row(q: ir.Value, word: int = word) -> None:
                r = builder.add(q, _const(64 * word))
                inside = builder.icmp_signed("<", r, self.count)
                at = builder.add(self.first, builder.select(inside, r, _const(0)))
                offset = builder.add(builder.mul(at, self.rs), column)
                value = builder.select(inside, builder.load(builder.gep(self.x, [offset])), zero)
                value = as_lightgbm_reads(builder, value)
                bit = builder.shl(_const(1), q)
                nan = builder.fcmp_unordered("uno", value, value)
                for mask, hit in zip(
                    self.masks, (nan, builder.fcmp_ordered("==", value, zero)), strict=True
                ):
                    marked = builder.or_(builder.load(mask), builder.select(hit, bit, _const(0)))
                    builder.store(marked, mask)
                slot = builder.add(builder.mul(u, _const(ROWS)), r)
                builder.store(to_byte(value), builder.gep(self.scratch, [slot]))

            loop(builder, _const(0), _const(64), row)
            nan, zeros = (builder.load(mask) for mask in self.masks)
            at = builder.add(builder.mul(u, _const(WORDS)), _const(word))
            builder.store(builder.not_(builder.or_(nan, zeros)), builder.gep(self.keep, [at]))
            for ways, value in enumerate((_const(0), nan, zeros, builder.or_(nan, zeros))):
                slot = builder.add(builder.mul(u, _const(4 * WORDS)), _const(ways * WORDS + word))
                builder.store(value, builder.gep(self.extra, [slot]))

    def rank(self, value: ir.Value, base: ir.Value) -> ir.Value:
        """Branch-free binary search: how many thresholds lie below the value (NaN: 0)."""
        builder = self.builder
        rank = _const(0)
        step = _SEARCH // 2
        while step:
            probe = _at(
                self.builder, self.search, builder.add(base, builder.add(rank, _const(step - 1)))
            )
            below = builder.fcmp_ordered("<", probe, value)
            rank = builder.add(rank, builder.select(below, _const(step), _const(0)))
            step //= 2
        return builder.trunc(rank, _I8)

    def category_code(self, value: ir.Value, start: ir.Value, size: ir.Value) -> ir.Value:
        """``static_cast<int>`` as x86-64 does it, then the category's code (0: none)."""
        builder = self.builder
        in_range, category = x86_category(builder, value, _I64)
        named = builder.and_(in_range, builder.icmp_signed("<", category, size))
        at = builder.add(start, builder.select(named, category, _const(0)))
        code = _at(builder, self.codes, at)
        return builder.select(named, code, ir.Constant(_I8, 0))


def _trees_function(
    module: ir.Module, forest: Forest, tables: _Tables, layout: _Layout
) -> ir.Function:
    """``trees(scratch, leaves, count)``: every tree on a prepared block, in order.

    With ``leaves`` null, each exit leaf's value is added to the row's sum for
    the tree's class; otherwise the leaf's number is written there (rows x trees).
    """
    byte = _I8.as_pointer()
    kind = ir.FunctionType(ir.VoidType(), [byte, _I32.as_pointer(), _I64])
    fn = ir.Function(module, kind, "trees")
    fn.linkage = "internal"
    code = _TreeCode(module, fn, forest, tables, layout)
    loop(code.builder, _const(0), _const(len(forest.trees)), code.tree)
    code.builder.ret_void()
    return fn


class _TreeCode:
    """The body of ``trees``: one tree's splits, leaf slices, exit leaves and sums."""

    def __init__(
        self, module: ir.Module, fn: ir.Function, forest: Forest, tables: _Tables, layout: _Layout
    ) -> None:
        self.forest, self.bits = forest, tables.leaf_bits
        scratch, self.leaves_out, self.count = fn.args
        builder = self.builder = ir.IRBuilder(fn.append_basic_block("entry"))
        self.node = {
            name: constant_table(module, f"node_{name}", kind, getattr(tables, f"node_{name}"))
            for name, kind in (
                ("bytes", _I32),
                ("keep", _I32),
                ("extra", _I32),
                ("left", ir.IntType(16)),
                ("right", ir.IntType(16)),
                ("rank", _I8),
            )
        }
        self.categorical = any(tables.node_sets)
        self.starts = constant_table(module, "tree_starts", _I64, tables.tree_starts)
        self.values = constant_table(module, "leaf_values", _DOUBLE, tables.leaf_values)
        self.bit_leaves = constant_table(module, "bit_leaves", _I64, tables.bit_leaves)
        self.bit_starts = constant_table(module, "bit_starts", _I64, tables.bit_starts)
        self.reach = _typed(builder, scratch, _const(layout.reach), _I64)
        self.keep = _typed(builder, scratch, _const(layout.keep), _I64)
        self.extra = _typed(builder, scratch, _const(layout.extra), _I64)
        self.exits = builder.gep(scratch, [_const(layout.leaves)])
        self.sums = _typed(builder, scratch, _const(layout.sums), _DOUBLE)
        self.scratch = scratch
        self.slices = [[builder.alloca(_I64) for _ in range(WORDS)] for _ in range(self.bits)]
        self.goes_left = [builder.alloca(_I64) for _ in range(WORDS)]
        self.node_sets = constant_table(module, "node_sets", _I64, tables.node_sets)
        self.set_codes = constant_table(module, "set_codes", _I8, tables.set_codes)

    def tree(self, t: ir.Value) -> None:
        builder = self.builder
        first = _at(builder, self.starts, t)
        for word in range(WORDS):
            builder.store(_const(-1), builder.gep(self.reach, [_const(word)]))
        last = _at(builder, self.starts, builder.add(t, _const(1)))
        loop(builder, first, last, lambda i: self.split(i, first))
        for bit in range(self.bits):
            self.slice(t, bit)
        self.exit_leaves()
        wanted = builder.icmp_unsigned("!=", self.leaves_out, ir.Constant(_I32.as_pointer(), None))
        with builder.if_else(wanted) as (write_leaves, add_values):
            with write_leaves:
                loop(builder, _const(0), self.count, lambda r: self.write_leaf(t, r))
            with add_values:
                self.add_values(t)

    def split(self, i: ir.Value, first: ir.Value) -> None:
        """Node ``i``'s reach mask divided between its children, a word at a time."""
        builder = self.builder

        def field(name: str) -> ir.Value:
            return builder.zext(_at(builder, self.node[name], i), _I64)

        at = field("bytes")
        if self.categorical:  # decided by the split's kind, a branch only where both occur
            sets = _at(builder, self.node_sets, i)
            categorical = builder.icmp_unsigned("!=", sets, _const(0))
            with builder.if_else(categorical) as (by_set, by_threshold):
                with by_set:
                    self.in_set(at, sets)
                with by_threshold:
                    self.below_threshold(at, field)
        else:
            self.below_threshold(at, field)
        left, right = field("left"), field("right")
        here_slot = builder.mul(builder.sub(i, first), _const(WORDS))
        for word, cell in enumerate(self.goes_left):
            goes_left = builder.load(cell)
            w = _const(word)
            here = builder.load(builder.gep(self.reach, [builder.add(here_slot, w)]))
            to_left = builder.gep(self.reach, [builder.add(left, w)])
            builder.store(builder.and_(here, goes_left), to_left)
            to_right = builder.gep(self.reach, [builder.add(right, w)])
            builder.store(builder.and_(here, builder.not_(goes_left)), to_right)

    def compare(self, at: ir.Value, word: int, byte: ir.Value, predicate: str) -> ir.Value:
        """The 64 rows of ``word`` whose byte (feature at ``at``) is ``predicate`` ``byte``."""
        builder = self.builder
        splat = builder.shuffle_vector(
            builder.insert_element(ir.Constant(_BYTES, None), byte, _const(0)),
            ir.Constant(_BYTES, None),
            ir.Constant(ir.VectorType(_I32, 32), [0] * 32),
        )
        halves = []
        for half in range(2):
            offset = builder.add(at, _const(64 * word + 32 * half))
            block = builder.load(_typed(builder, self.scratch, offset, _BYTES), align=1)
            hits = builder.bitcast(builder.icmp_unsigned(predicate, block, splat), _I32)
            halves.append(builder.zext(hits, _I64))
        return builder.or_(halves[0], builder.shl(halves[1], _const(32)))

    def below_threshold(self, at: ir.Value, field: Callable[[str], ir.Value]) -> None:
        """``x <= threshold`` as ranks, NaN and 0.0 rows going their own ways."""
        builder = self.builder
        rank = builder.trunc(field("rank"), _I8)
        keep, extra = field("keep"), field("extra")
        for word, cell in enumerate(self.goes_left):
            w = _const(word)
            compares = builder.load(builder.gep(self.keep, [builder.add(keep, w)]))
            special = builder.load(builder.gep(self.extra, [builder.add(extra, w)]))
            below = builder.and_(self.compare(at, word, rank, "<="), compares)
            builder.store(builder.or_(below, special), cell)

    def in_set(self, at: ir.Value, codes: ir.Value) -> None:
        """The rows whose category is one the split sends left: a compare per such category."""
        builder = self.builder
        start = builder.and_(codes, _const(0xFFFFFFFF))
        stop = builder.add(start, builder.lshr(codes, _const(32)))
        for cell in self.goes_left:
            builder.store(_const(0), cell)

        def one(e: ir.Value) -> None:
            code = _at(builder, self.set_codes, e)
            for word, cell in enumerate(self.goes_left):
                builder.store(
                    builder.or_(builder.load(cell), self.compare(at, word, code, "==")), cell
                )

        loop(builder, start, stop, one)

    def slice(self, t: ir.Value, bit: int) -> None:
        """The rows whose exit leaf has ``bit`` set: the leaves with that bit, ORed."""
        builder = self.builder
        cells = self.slices[bit]
        for cell in cells:
            builder.store(_const(0), cell)
        at = builder.add(builder.mul(t, _const(self.bits)), _const(bit))

        def gather(e: ir.Value) -> None:
            slot = builder.add(_at(builder, self.bit_leaves, e), _const(_LEAF_SLOT))
            for word, cell in enumerate(cells):
                index = builder.add(builder.mul(slot, _const(WORDS)), _const(word))
                mask = builder.load(builder.gep(self.reach, [index]))
                builder.store(builder.or_(builder.load(cell), mask), cell)

        stop = _at(builder, self.bit_starts, builder.add(at, _const(1)))
        loop(builder, _at(builder, self.bit_starts, at), stop, gather)

    def exit_leaves(self) -> None:
        """The slices turned into one byte a row: the row's exit leaf."""
        builder = self.builder
        for part in range(ROWS // 32):
            exit_leaf = ir.Constant(_BYTES, [0] * 32)
            for bit in range(self.bits):
                word = builder.load(self.slices[bit][part // 2])
                rows = builder.trunc(builder.lshr(word, _const(32 * (part % 2))), _I32)
                ones = builder.zext(builder.bitcast(rows, ir.VectorType(ir.IntType(1), 32)), _BYTES)
                shifted = builder.shl(ones, ir.Constant(_BYTES, [bit] * 32))
                exit_leaf = builder.or_(exit_leaf, shifted)
            store = builder.bitcast(
                builder.gep(self.exits, [_const(32 * part)]), _BYTES.as_pointer()
            )
            builder.store(exit_leaf, store, align=1)

    def write_leaf(self, t: ir.Value, r: ir.Value) -> None:
        builder = self.builder
        leaf = builder.zext(builder.load(builder.gep(self.exits, [r])), _I32)
        at = builder.add(builder.mul(r, _const(len(self.forest.trees))), t)
        builder.store(leaf, builder.gep(self.leaves_out, [at]))

    def add_values(self, t: ir.Value) -> None:
        """Each row's exit leaf value onto its running sum for the tree's class, in tree order."""
        builder = self.builder
        k = builder.urem(t, _const(self.forest.num_class))
        row_sums = builder.gep(self.sums, [builder.mul(k, _const(ROWS))])
        tree_values = builder.mul(t, _const(1 << self.bits))

        def add(r: ir.Value) -> None:
            leaf = builder.zext(builder.load(builder.gep(self.exits, [r])), _I64)
            value = _at(builder, self.values, builder.add(tree_values, leaf))
            slot = builder.gep(row_sums, [r])
            builder.store(builder.fadd(builder.load(slot), value), slot)

        loop(builder, _const(0), _const(ROWS), add)


def _blocks(
    builder: ir.IRBuilder,
    begin: ir.Value,
    end: ir.Value,
    body: Callable[[ir.Value, ir.Value], None],
) -> None:
    """``body(first, count)`` for each block of up to ``ROWS`` rows in ``[begin, end)``."""

    def block(first: ir.Value) -> None:
        stop = builder.add(first, _const(ROWS))
        stop = builder.select(builder.icmp_signed("<", stop, end), stop, end)
        body(first, builder.sub(stop, first))

    loop(builder, begin, end, block, step=ROWS)


def _predict_function(
    module: ir.Module,
    *,
    forest: Forest,
    layout: _Layout,
    prepare: ir.Function,
    trees: ir.Function,
    exp: ir.Function,
) -> None:
    fn = ir.Function(module, entry_type(), ENTRY)
    x, rs, cs, out, begin, end, raw, scratch = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    scratch = builder.bitcast(scratch, _I8.as_pointer())
    sums = _typed(builder, scratch, _const(layout.sums), _DOUBLE)
    classes = _const(forest.num_class)
    nothing = ir.Constant(_I32.as_pointer(), None)

    def block(first: ir.Value, count: ir.Value) -> None:
        builder.call(prepare, [x, rs, cs, first, count, scratch])

        def clear(i: ir.Value) -> None:
            builder.store(ir.Constant(_DOUBLE, 0.0), builder.gep(sums, [i]))

        loop(builder, _const(0), _const(forest.num_class * ROWS), clear)
        builder.call(trees, [scratch, nothing, count])

        def copy(r: ir.Value) -> None:
            row = builder.mul(builder.add(first, r), classes)
            for k in range(forest.num_class):
                value = builder.load(builder.gep(sums, [builder.add(r, _const(k * ROWS))]))
                builder.store(value, builder.gep(out, [builder.add(row, _const(k))]))

        loop(builder, _const(0), count, copy)

    _blocks(builder, begin, end, block)
    finish_entry(builder, forest, exp=exp, out=out, rows=(begin, end), raw=raw)


def _leaves_function(
    module: ir.Module, forest: Forest, prepare: ir.Function, trees: ir.Function
) -> None:
    pointer = _DOUBLE.as_pointer()
    kind = ir.FunctionType(
        ir.VoidType(), [pointer, _I64, _I64, _I32.as_pointer(), _I64, _I64, pointer]
    )
    fn = ir.Function(module, kind, LEAVES_ENTRY)
    x, rs, cs, out, begin, end, scratch = fn.args
    builder = ir.IRBuilder(fn.append_basic_block("entry"))
    scratch = builder.bitcast(scratch, _I8.as_pointer())

    def block(first: ir.Value, count: ir.Value) -> None:
        builder.call(prepare, [x, rs, cs, first, count, scratch])
        rows_out = builder.gep(out, [builder.mul(first, _const(len(forest.trees)))])
        builder.call(trees, [scratch, rows_out, count])

    _blocks(builder, begin, end, block)
    builder.ret_void()
