"""Plain numbers in text records (CSV rows, JSON lines) parsed in one compiled pass.

Arrow's typed read took about 40% of a worker's CPU on a CSV of numbers, and
polars' parse about a third on JSON lines of numbers. Arrow splits the fields
into a buffer of its own, then converts each column with a parser for every
spelling a double may have. Most data files write numbers in a few digits
(``-0.274138``, ``12``, ``1.5e-3``), and such a number is exactly a whole
number times or over a power of ten. Where that whole number is below 2**53
and the power at most 10**22, both are exact doubles, and one IEEE division
or multiplication rounds their quotient or product correctly (Clinger's fast
path): the double Arrow's correctly rounded parser gives. Other numbers of up
to 19 digits go through Eisel and Lemire's algorithm (``_Generator._lemire``).

So this pass takes a CSV chunk (``csv_chunk``) only where every number field
is empty (missing, a null as Arrow reads it), ``nan``, ``inf`` or ``-inf``,
or such a number, and every row has the header's fields. Text fields are
copied out verbatim and checked to be UTF-8, as Arrow checks them. It takes
a chunk of JSON lines (``json_chunk``) only where every record is one object
of the expected keys, in their order, each holding such a number (in JSON's
spelling), or for a key polars reads as whole numbers or booleans a whole
number of up to 18 digits or ``true``/``false``, or ``null``, with at most
spaces between. Anything else (a longer number, another spelling, a blank, a
row or record of other shape) declines the chunk, and Arrow or polars reads
it as before.

The code is generated for this machine when the first chunk needs it (about
50-100 ms), and called through ctypes, which releases the interpreter lock.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

import llvmlite.binding as llvm
import numpy as np
import pyarrow as pa
from llvmlite import ir

_CSV, _JSON = "csv_numbers", "json_numbers"
_I1, _I8, _I64 = ir.IntType(1), ir.IntType(8), ir.IntType(64)
_DOUBLE = ir.DoubleType()
_HEAD = (ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
#: (text, size, rows, columns, kinds, numbers, missing, bounds) -> 0 taken, 1 declined
_CSV_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int64, *_HEAD, *[ctypes.c_void_p] * 4)
#: (text, size, rows, columns, keys, numbers, missing, key offsets, kinds) -> as CSV's
_JSON_SIGNATURE = ctypes.CFUNCTYPE(ctypes.c_int64, *_HEAD, *[ctypes.c_void_p] * 5)
#: What a JSON key's values are read as (``json_chunk``): its code in the generated pass.
JSON_KINDS = {"double": 0, "int64": 1, "bool": 2}
#: Significant digits a 64-bit whole number always holds.
_MAX_DIGITS = 19
#: Exponent digits read (more decline: no plain number needs them).
_MAX_EXPONENT_DIGITS = 4
#: A text column longer than this (in a chunk) declines it: long texts are Arrow's to read.
_MAX_TEXT_BYTES = 16 << 20
#: The largest power of ten that is an exact double.
_MAX_EXACT_POWER = 22
_NAN, _INF = float("nan"), float("inf")
#: The powers of ten Eisel-Lemire takes (beyond them a double is zero or infinite).
_SMALLEST_POWER, _LARGEST_POWER = -342, 308


def _powers_of_five() -> list[int]:
    """5**q for q in [-342, 308] as 128 bits, high word then low (two's complement
    signed, as LLVM's constants take them): truncated to the top 128 bits, or for
    negative q, 2**b // 5**-q + 1 so; the table fast_float 8.2 generates (its
    ``script/table_generation.py``), checked entry for entry against its
    ``fast_table.h``."""
    words: list[int] = []
    for q in range(_SMALLEST_POWER, _LARGEST_POWER + 1):
        if q < 0:
            five = 5**-q
            z = five.bit_length()  # the least z with 2**z >= 5**-q (never equal)
            number = 2 ** (z + 127 if q >= -27 else 2 * z + 128) // five + 1
        else:
            number = 5**q
        while number < 1 << 127:
            number *= 2
        while number >= 1 << 128:
            number //= 2
        for word in (number >> 64, number & ((1 << 64) - 1)):
            words.append(word - (1 << 64) if word >= 1 << 63 else word)
    return words


_FIVES = _powers_of_five()
_lock = threading.Lock()
_engines: list[llvm.ExecutionEngine] = []
log = logging.getLogger(__name__)


def csv_chunk(
    text: pa.Buffer, rows: int, columns: Sequence[str], numbers: Sequence[str]
) -> pa.RecordBatch | None:
    """``text``'s ``rows`` lines as Arrow's typed read gives them (``numbers`` as
    doubles, empty ones null; the other columns as text), or None where this
    pass declines the chunk (see the module docstring)."""
    wanted = set(numbers)
    kinds = np.array([name in wanted for name in columns], dtype=np.uint8)
    number_count = int(kinds.sum())
    values = np.empty((number_count, rows), dtype=np.float64)
    missing = np.empty((number_count, rows), dtype=np.uint8)
    bounds = np.empty((len(columns) - number_count, rows, 2), dtype=np.int64)
    if not _taken(_CSV, text, rows, len(columns), kinds, values, missing, bounds):
        return None
    data = np.frombuffer(text, np.uint8)
    arrays: list[pa.Array] = []
    j = k = 0
    for is_number in kinds:
        if is_number:
            arrays.append(_doubles(values[j], missing[j]))
            j += 1
        else:
            try:
                column = _text(data, bounds[k])
            except pa.ArrowInvalid:
                return None  # not UTF-8: Arrow's read says where
            if column is None:
                return None
            arrays.append(column)
            k += 1
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))


def json_chunk(text: pa.Buffer, rows: int, columns: Mapping[str, str]) -> pa.RecordBatch | None:
    """``text``'s ``rows`` records as polars reads them, each key in ``columns`` as its
    kind there says (``JSON_KINDS``), or None where this pass declines the chunk (see
    the module docstring)."""
    if not columns:
        return None
    kinds = np.array([JSON_KINDS[kind] for kind in columns.values()], dtype=np.uint8)
    keys = [json.dumps(name, ensure_ascii=False).encode() for name in columns]
    spelled = np.frombuffer(b"".join(keys), np.uint8)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum([len(key) for key in keys], out=offsets[1:])
    values = np.empty((len(columns), rows), dtype=np.float64)
    missing = np.empty((len(columns), rows), dtype=np.uint8)
    if not _taken(_JSON, text, rows, len(columns), spelled, values, missing, offsets, kinds):
        return None
    arrays = []
    for j, kind in enumerate(columns.values()):
        if kind == "double":
            arrays.append(_doubles(values[j], missing[j]))
            continue
        whole = values[j].view(np.int64)  # written there as 64-bit integers
        if kind == "int64":
            arrays.append(pa.array(whole, pa.int64(), mask=missing[j].astype(bool)))
        else:
            arrays.append(pa.array(whole != 0, pa.bool_(), mask=missing[j].astype(bool)))
    return pa.RecordBatch.from_arrays(arrays, names=list(columns))


def _taken(entry: str, text: pa.Buffer, rows: int, columns: int, *arrays: np.ndarray) -> bool:
    """Whether ``entry`` took the chunk, writing into ``arrays`` (see ``_module``).

    Its scans rely on the chunk ending with a line end; one that does not, an
    empty one, and a process without the pass are declined here."""
    functions = _functions()
    if functions is None or not text.size or not rows:
        return False
    if np.frombuffer(text, np.uint8)[-1] != ord("\n"):
        return False
    pointers = [array.ctypes.data for array in arrays]
    return not functions[entry](text.address, text.size, rows, columns, *pointers)


def warm() -> None:
    """Generate the code now (a worker does at start, not on its first file)."""
    _functions()


def _doubles(values: np.ndarray, missing: np.ndarray) -> pa.Array:
    validity = None
    if missing.any():
        validity = pa.py_buffer(np.packbits(missing == 0, bitorder="little"))
    return pa.Array.from_buffers(pa.float64(), len(values), [validity, pa.py_buffer(values)])


def _text(data: np.ndarray, bounds: np.ndarray) -> pa.Array | None:
    """One text column's fields, gathered from where they lie in the chunk; None for a
    column of more than ``_MAX_TEXT_BYTES`` (its gather takes 9 bytes a byte: Arrow's
    read takes about one)."""
    starts, ends = bounds[:, 0], bounds[:, 1]
    lengths = ends - starts
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _MAX_TEXT_BYTES:
        return None
    where = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    array = pa.Array.from_buffers(
        pa.large_string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data[where])]
    )
    array.validate(full=True)  # UTF-8, as Arrow's reader checks its text
    return array.cast(pa.string())


@functools.cache
def _functions() -> dict[str, Callable[..., int]] | None:
    """The pass's entry points, or None where LLVM cannot generate them here (every
    chunk then goes to Arrow or polars: slower, never wrong)."""
    try:
        return _generated()
    except Exception:
        log.warning("numbers are read by Arrow and polars: no compiled pass", exc_info=True)
        return None


def _generated() -> dict[str, Callable[..., int]]:
    with _lock:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        machine = llvm.Target.from_default_triple().create_target_machine(opt=2)
        module = llvm.parse_assembly(str(_module()))
        module.verify()
        builder = llvm.create_pass_builder(
            machine, llvm.create_pipeline_tuning_options(speed_level=2)
        )
        builder.getModulePassManager().run(module, builder)
        engine = llvm.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        _engines.append(engine)  # the code lives as long as its engine
        return {
            _CSV: _CSV_SIGNATURE(engine.get_function_address(_CSV)),
            _JSON: _JSON_SIGNATURE(engine.get_function_address(_JSON)),
        }


def _module() -> ir.Module:
    """``csv_numbers(text, size, rows, columns, kinds, numbers, missing, bounds)`` and
    ``json_numbers(text, size, rows, columns, keys, numbers, missing, key_offsets)``.

    ``kinds[c]`` is 1 where CSV column ``c`` is a number. The ``j``-th number
    column's row ``r`` goes to ``numbers[j * rows + r]`` and its missing flag
    to ``missing[j * rows + r]``; the ``k``-th text column's field bounds (start,
    end) to ``bounds[(k * rows + r) * 2]``. A JSON record's ``c``-th key is
    spelled ``keys[key_offsets[c]:key_offsets[c + 1]]``, quotes and all, and its
    values are ``JSON_KINDS``' ``kinds[c]`` (whole numbers and booleans go to
    ``numbers`` as 64-bit integers). Both return 1 to decline the chunk.
    """
    module = ir.Module(name="plain_numbers")
    module.triple = llvm.get_default_triple()
    bytes_, doubles, longs = _I8.as_pointer(), _DOUBLE.as_pointer(), _I64.as_pointer()
    head = [bytes_, _I64, _I64, _I64, bytes_, doubles, bytes_, longs]
    csv = ir.FunctionType(_I64, head)
    _Generator(ir.Function(module, csv, _CSV), json=False).generate()
    _Generator(
        ir.Function(module, ir.FunctionType(_I64, [*head, bytes_]), _JSON), json=True
    ).generate()
    return module


#: The variables the parse keeps (LLVM keeps them in registers).
_VARIABLES = {
    "pos": _I64, "r": _I64, "c": _I64, "j": _I64, "k": _I64, "start": _I64, "m": _I64,
    "digits": _I64, "significant": _I64, "started": _I1, "exponent": _I64, "e": _I64,
    "e_digits": _I64, "negative": _I1, "e_negative": _I1, "value": _DOUBLE, "real": _I1,
    "key": _I64, "key_end": _I64,
}  # fmt: skip


class _Generator:
    """The parse as a state machine: a basic block a state, variables in stack slots.

    ``json`` chooses JSON's records and spelling of numbers (no ``+``, ``.5``,
    ``5.``, ``01``, ``nan`` or ``inf``; ``null`` is missing; ``-0`` is a whole
    zero, +0.0, as polars reads it) over CSV's rows.
    """

    def __init__(self, fn: ir.Function, *, json: bool) -> None:
        self.fn, self.json = fn, json
        (self.text, self.size, self.rows, self.columns, self.kinds) = fn.args[:5]
        (self.numbers, self.missing, self.bounds) = fn.args[5:8]
        self.json_kinds = fn.args[8] if json else None
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.slots = {name: self.b.alloca(t, name=name) for name, t in _VARIABLES.items()}
        self.blocks: dict[str, ir.Block] = {}
        self.powers = ir.GlobalVariable(
            fn.module,
            ir.ArrayType(_DOUBLE, _MAX_EXACT_POWER + 1),
            fn.module.get_unique_name("powers"),
        )
        self.powers.global_constant, self.powers.linkage = True, "internal"
        self.powers.initializer = ir.Constant(
            self.powers.type.pointee, [float(10**p) for p in range(_MAX_EXACT_POWER + 1)]
        )
        words = ir.ArrayType(_I64, len(_FIVES))
        self.fives = ir.GlobalVariable(fn.module, words, fn.module.get_unique_name("fives"))
        self.fives.global_constant, self.fives.linkage = True, "internal"
        self.fives.initializer = ir.Constant(words, _FIVES)

    def generate(self) -> None:
        if self.json:
            self._records()
        else:
            self._rows()
            self._text_field()
        self._number_field()
        self._digits()
        self._exponent()
        self._value()
        self._lemire()

    # ---- helpers

    def get(self, name: str) -> ir.Value:
        return self.b.load(self.slots[name])

    def put(self, name: str, value: ir.Value) -> None:
        self.b.store(value, self.slots[name])

    def bump(self, name: str, by: int | ir.Value = 1) -> None:
        step = _i64(by) if isinstance(by, int) else by
        self.put(name, self.b.add(self.get(name), step))

    def at(self, offset: int = 0) -> ir.Value:
        """The byte ``offset`` past the current one."""
        return self.b.load(self.b.gep(self.text, [self.b.add(self.get("pos"), _i64(offset))]))

    def is_(self, ch: ir.Value, *chars: str) -> ir.Value:
        result = self.b.icmp_unsigned("==", ch, _byte(chars[0]))
        for char in chars[1:]:
            result = self.b.or_(result, self.b.icmp_unsigned("==", ch, _byte(char)))
        return result

    def digit(self, offset: int = 0) -> tuple[ir.Value, ir.Value]:
        """Whether the byte ``offset`` past the current one is a digit, and its value if
        it is."""
        d = self.b.sub(self.b.zext(self.at(offset), _I64), _i64(ord("0")))
        return self.b.icmp_unsigned("<", d, _i64(10)), d

    def json_sign(self) -> None:
        """JSON's number start: a minus or none, then a digit, and no leading zero before
        another digit (``+1``, ``.5``, ``01`` decline)."""
        b = self.b
        negative = self.is_(self.at(), "-")
        self.put("negative", negative)
        self.bump("pos", b.zext(negative, _I64))
        self.decline_if(b.not_(self.digit()[0]))
        self.decline_if(b.and_(self.is_(self.at(), "0"), self.digit(1)[0]))

    def block(self, name: str) -> ir.Block:
        if name not in self.blocks:
            self.blocks[name] = self.fn.append_basic_block(name)
        return self.blocks[name]

    def go(self, name: str) -> None:
        self.b.branch(self.block(name))

    def enter(self, name: str) -> None:
        self.b.position_at_end(self.block(name))

    def when(self, condition: ir.Value, yes: str, no: str) -> None:
        self.b.cbranch(condition, self.block(yes), self.block(no))

    def decline_if(self, condition: ir.Value) -> None:
        with self.b.if_then(condition):
            self.go("declined")

    def delimiter(self) -> ir.Value:
        """What ends the current field: a line end after the last column, else a comma."""
        last = self.b.icmp_signed("==", self.get("c"), self.b.sub(self.columns, _i64(1)))
        return self.b.select(last, _byte("\n"), _byte(","))

    def expect(self, char: str) -> None:
        """Decline unless the current byte is ``char``; then step past it."""
        self.decline_if(self.b.icmp_unsigned("!=", self.at(), _byte(char)))
        self.bump("pos")

    def skip_spaces(self) -> None:
        check = f"spaces{len(self.blocks)}"
        self.go(check)
        self.enter(check)
        self.when(self.is_(self.at(), " "), f"{check}.next", f"{check}.end")
        self.enter(f"{check}.next")
        self.bump("pos")
        self.go(check)
        self.enter(f"{check}.end")

    def cell(self) -> ir.Value:
        return self.b.add(self.b.mul(self.get("j"), self.rows), self.get("r"))

    # ---- the parse

    def _each_row(self, row_end: str, opening: str = "") -> None:
        """Rows one after another from the chunk's start: ``opening``, then the fields
        (from ``field_start``) and ``row_end``, which goes back to ``row_check``."""
        b = self.b
        self.put("pos", _i64(0))
        self.put("r", _i64(0))
        self.go("row_check")
        self.enter("row_check")
        self.when(b.icmp_signed("<", self.get("r"), self.rows), "row_start", "done")
        self.enter("row_start")
        # within a row, every scan stops at the line end that ends the chunk
        self.decline_if(b.icmp_signed(">=", self.get("pos"), self.size))
        if opening:
            self.expect(opening)
            self.skip_spaces()
        for name in ("c", "j", "k"):
            self.put(name, _i64(0))
        self.go("field_check")
        self.enter("field_check")
        self.when(b.icmp_signed("<", self.get("c"), self.columns), "field_start", row_end)
        self.enter("done")  # every row read, and nothing after them
        b.ret(b.zext(b.icmp_signed("!=", self.get("pos"), self.size), _I64))
        self.enter("declined")
        b.ret(_i64(1))

    def _rows(self) -> None:
        """CSV: fields up to a comma, the last up to the line end."""
        b = self.b
        self._each_row("row_next")
        self.enter("row_next")
        self.bump("r")
        self.go("row_check")
        self.enter("field_start")
        kind = b.load(b.gep(self.kinds, [self.get("c")]))
        self.when(b.icmp_unsigned("!=", kind, ir.Constant(_I8, 0)), "number", "text_field")

    def _records(self) -> None:
        """``{"key": value, ...}`` and a line end, the keys as ``keys`` spell them."""
        b = self.b
        self._each_row("record_end", opening="{")
        self.enter("field_start")
        with b.if_then(b.icmp_signed(">", self.get("c"), _i64(0))):
            self.expect(",")
            self.skip_spaces()
        offsets = self.bounds
        self.put("key", b.load(b.gep(offsets, [self.get("c")])))
        self.put("key_end", b.load(b.gep(offsets, [b.add(self.get("c"), _i64(1))])))
        self.go("key_check")
        # a key holds no line end, so a mismatch comes at the line's end at the latest
        self.enter("key_check")
        self.when(b.icmp_signed("<", self.get("key"), self.get("key_end")), "key_byte", "key_end")
        self.enter("key_byte")
        spelled = b.load(b.gep(self.kinds, [self.get("key")]))
        self.decline_if(b.icmp_unsigned("!=", self.at(), spelled))
        self.bump("pos")
        self.bump("key")
        self.go("key_check")
        self.enter("key_end")
        self.skip_spaces()
        self.expect(":")
        self.skip_spaces()
        self.go("number")
        self.enter("record_end")
        self.expect("}")
        self.expect("\n")
        self.bump("r")
        self.go("row_check")

    def _text_field(self) -> None:
        """Up to the next comma or line end (the chunk ends with one): its bounds."""
        b = self.b
        self.enter("text_field")
        self.put("start", self.get("pos"))
        self.go("text_scan")
        self.enter("text_scan")
        self.when(self.is_(self.at(), ",", "\n"), "text_end", "text_next")
        self.enter("text_next")
        self.bump("pos")
        self.go("text_scan")
        self.enter("text_end")
        self.decline_if(b.icmp_unsigned("!=", self.at(), self.delimiter()))
        slot = b.mul(b.add(b.mul(self.get("k"), self.rows), self.get("r")), _i64(2))
        b.store(self.get("start"), b.gep(self.bounds, [slot]))
        b.store(self.get("pos"), b.gep(self.bounds, [b.add(slot, _i64(1))]))
        for name in ("k", "pos", "c"):
            self.bump(name)
        self.go("field_check")

    def _number_field(self) -> None:
        """Empty (missing), or a sign, then ``nan``, ``inf`` or digits."""
        b = self.b
        self.enter("number")
        b.store(ir.Constant(_I8, 0), b.gep(self.missing, [self.cell()]))
        self.put("negative", ir.Constant(_I1, 0))
        self.put("real", ir.Constant(_I1, 0))
        if self.json:
            kind = b.load(b.gep(self.json_kinds, [self.get("c")]))
            is_double = b.icmp_unsigned("==", kind, ir.Constant(_I8, JSON_KINDS["double"]))
            self.when(is_double, "double", "not_double")
            self.enter("not_double")
            is_whole = b.icmp_unsigned("==", kind, ir.Constant(_I8, JSON_KINDS["int64"]))
            self.when(is_whole, "int64", "bool")
            self._whole_and_bool()
            self.enter("double")
            self.when(self.is_(self.at(), "n"), "null", "signed")
            self._word("null", "ull", "empty")
        else:
            self.when(self.is_(self.at(), ",", "\n"), "empty", "signed")
        self.enter("empty")
        b.store(ir.Constant(_I8, 1), b.gep(self.missing, [self.cell()]))
        self.put("value", ir.Constant(_DOUBLE, _NAN))
        self.go("number_end")

        self.enter("signed")
        if self.json:
            self.json_sign()
            self.go("mantissa")
            return
        ch = self.at()
        self.put("negative", self.is_(ch, "-"))
        signed = self.is_(ch, "-", "+")
        self.bump("pos", b.zext(signed, _I64))
        is_n = self.is_(self.at(), "n")
        self.decline_if(b.and_(is_n, signed))  # a signed nan: Arrow's bits for it are its own
        self.when(is_n, "nan", "not_nan")
        self.enter("not_nan")
        self.when(self.is_(self.at(), "i"), "inf", "mantissa")
        for word, value, then in (("nan", _NAN, "number_end"), ("inf", _INF, "signed_value")):
            self._word(word, word[1:], f"{word}.read")
            self.enter(f"{word}.read")
            self.put("value", ir.Constant(_DOUBLE, value))
            self.go(then)

    def _whole_and_bool(self) -> None:
        """JSON's integers of up to 18 digits, and ``true`` and ``false``, as 64-bit
        integers in the number's slot (``null`` is missing)."""
        b = self.b
        self.enter("int64")
        self.when(self.is_(self.at(), "n"), "null", "int64.sign")
        self.enter("int64.sign")
        self.json_sign()
        self._digits_into("int64.digits", "m", "digits")
        self.decline_if(b.icmp_signed(">", self.get("digits"), _i64(18)))
        self.decline_if(self.is_(self.at(), ".", "e", "E"))  # polars reads no fraction as one
        m = self.get("m")
        self._integer(b.select(self.get("negative"), b.neg(m), m))

        self.enter("bool")
        self.when(self.is_(self.at(), "n"), "null", "bool.t")
        self.enter("bool.t")
        self.when(self.is_(self.at(), "t"), "true", "bool.f")
        self.enter("bool.f")
        self.when(self.is_(self.at(), "f"), "false", "declined")
        for word, value in (("true", 1), ("false", 0)):
            self._word(word, word[1:], f"{word}.read")
            self.enter(f"{word}.read")
            self._integer(_i64(value))

    def _digits_into(self, loop: str, value: str, count: str) -> None:
        """Digits read into ``value`` (from 0), counted in ``count``: the caller checks the
        count, past which ``value`` may have wrapped."""
        b = self.b
        self.put(value, _i64(0))
        self.put(count, _i64(0))
        self.go(loop)
        self.enter(loop)
        is_digit, _ = self.digit()
        self.when(is_digit, f"{loop}.digit", f"{loop}.end")
        self.enter(f"{loop}.digit")
        _, d = self.digit()
        self.put(value, b.add(b.mul(self.get(value), _i64(10)), d))
        self.bump(count)
        self.bump("pos")
        self.go(loop)
        self.enter(f"{loop}.end")

    def _integer(self, value: ir.Value) -> None:
        self.put("value", self.b.bitcast(value, _DOUBLE))
        self.go("number_end")

    def _word(self, block: str, rest: str, then: str) -> None:
        """From ``block``, at a word's first byte: its ``rest`` follows, or decline;
        then past it, on to ``then``. A byte is read only once the ones before it
        matched: never past the line end."""
        for i, char in enumerate(rest, 1):
            self.enter(block if i == 1 else f"{block}_{i}")
            self.when(self.is_(self.at(i), char), f"{block}_{i + 1}", "declined")
        self.enter(f"{block}_{len(rest) + 1}")
        self.bump("pos", len(rest) + 1)
        self.go(then)

    def _digits(self) -> None:
        """The digits before and after a point, as one whole number and a power of ten."""
        b = self.b
        self.enter("mantissa")
        for name in ("m", "digits", "significant", "exponent"):
            self.put(name, _i64(0))
        self.put("started", ir.Constant(_I1, 0))
        self.go("whole")
        for part, after in (("whole", "after_whole"), ("fraction", "after_fraction")):
            self.enter(part)
            is_digit, _ = self.digit()
            self.when(is_digit, f"{part}_digit", after)
            self.enter(f"{part}_digit")
            if part == "fraction":
                self.bump("exponent", -1)
            self._accumulate()
            self.go(part)
        self.enter("after_whole")
        is_point = self.is_(self.at(), ".")
        self.bump("pos", b.zext(is_point, _I64))
        self.put("real", is_point)
        if self.json:  # a point has a digit after it
            self.decline_if(b.and_(is_point, b.not_(self.digit()[0])))
        self.when(is_point, "fraction", "after_fraction")
        self.enter("after_fraction")
        no_digits = b.icmp_signed("==", self.get("digits"), _i64(0))
        too_many = b.icmp_signed(">", self.get("significant"), _i64(_MAX_DIGITS))
        self.decline_if(b.or_(no_digits, too_many))
        self.when(self.is_(self.at(), "e", "E"), "exponent_sign", "compute")

    def _accumulate(self) -> None:
        """Add a digit to the whole number, counting it as significant from the first
        that is not a leading zero (checked once the digits end: past 19 the number
        may have wrapped, and is declined)."""
        b = self.b
        _, d = self.digit()
        self.bump("digits")
        self.put("m", b.add(b.mul(self.get("m"), _i64(10)), d))
        started = b.or_(self.get("started"), b.icmp_unsigned("!=", d, _i64(0)))
        self.put("started", started)
        self.bump("significant", b.zext(started, _I64))
        self.bump("pos")

    def _exponent(self) -> None:
        b = self.b
        self.enter("exponent_sign")
        self.put("real", ir.Constant(_I1, 1))
        self.bump("pos")
        ch = self.at()
        self.put("e_negative", self.is_(ch, "-"))
        self.bump("pos", b.zext(self.is_(ch, "-", "+"), _I64))
        self._digits_into("exponent_digits", "e", "e_digits")
        e_digits = self.get("e_digits")
        no_digits = b.icmp_signed("==", e_digits, _i64(0))
        self.decline_if(b.or_(no_digits, b.icmp_signed(">", e_digits, _i64(_MAX_EXPONENT_DIGITS))))
        e = self.get("e")
        self.bump("exponent", b.select(self.get("e_negative"), b.neg(e), e))
        self.go("compute")

    def _value(self) -> None:
        """The whole number times or over its power of ten, where both are exact."""
        b = self.b
        self.enter("compute")
        self.put("value", ir.Constant(_DOUBLE, 0.0))
        zero = b.icmp_unsigned("==", self.get("m"), _i64(0))
        if self.json:  # JSON's whole -0 is the integer 0
            whole_zero = b.and_(zero, b.not_(self.get("real")))
            self.put("negative", b.and_(self.get("negative"), b.not_(whole_zero)))
        self.when(zero, "signed_value", "exact")  # zero, at any exponent

        self.enter("exact")
        m, exponent = self.get("m"), self.get("exponent")
        negative_power = b.icmp_signed("<", exponent, _i64(0))
        power = b.select(negative_power, b.neg(exponent), exponent)
        too_big = b.icmp_unsigned(">=", m, _i64(1 << 53))
        too_far = b.icmp_signed(">", power, _i64(_MAX_EXACT_POWER))
        self.when(b.or_(too_big, too_far), "lemire", "clinger")
        self.enter("clinger")
        whole = b.uitofp(m, _DOUBLE)
        scale = b.load(b.gep(self.powers, [_i64(0), power]))
        self.put("value", b.select(negative_power, b.fdiv(whole, scale), b.fmul(whole, scale)))
        self.go("signed_value")

        self.enter("signed_value")
        value = self.get("value")
        self.put("value", b.select(self.get("negative"), b.fneg(value), value))
        self.go("number_end")

        self.enter("number_end")
        if self.json:  # what follows is checked by the next key or the record's end
            self.skip_spaces()
        else:
            self.decline_if(b.icmp_unsigned("!=", self.at(), self.delimiter()))
            self.bump("pos")
        b.store(self.get("value"), b.gep(self.numbers, [self.cell()]))
        for name in ("j", "c"):
            self.bump(name)
        self.go("field_check")

    def _lemire(self) -> None:
        """Any other whole number of up to 19 digits and power of ten: Eisel and Lemire's
        algorithm, as fast_float (Arrow's parser) and simd_json (polars') compute it, from
        the 128-bit truncated powers of five. It rounds correctly for every such number
        (Mushtak and Lemire, "Fast Number Parsing Without Fallback"); where the older
        proof wanted a fallback, and for subnormals and overflow, it declines."""
        b = self.b
        i128 = ir.IntType(128)
        self.enter("lemire")
        q, w = self.get("exponent"), self.get("m")
        outside = b.or_(
            b.icmp_signed("<", q, _i64(_SMALLEST_POWER)),
            b.icmp_signed(">", q, _i64(_LARGEST_POWER)),
        )
        self.decline_if(outside)
        module = self.fn.module
        ctlz = module.globals.get("llvm.ctlz.i64") or ir.Function(
            module, ir.FunctionType(_I64, [_I64, _I1]), "llvm.ctlz.i64"
        )
        lz = b.call(ctlz, [w, ir.Constant(_I1, 0)])
        w = b.shl(w, lz)
        index = b.mul(b.sub(q, _i64(_SMALLEST_POWER)), _i64(2))

        def times_w(word: ir.Value) -> tuple[ir.Value, ir.Value]:
            product = b.mul(b.zext(w, i128), b.zext(word, i128))
            return b.trunc(b.lshr(product, ir.Constant(i128, 64)), _I64), b.trunc(product, _I64)

        high, low = times_w(b.load(b.gep(self.fives, [_i64(0), index])))
        second, _ = times_w(b.load(b.gep(self.fives, [_i64(0), b.add(index, _i64(1))])))
        mask = _i64(0x1FF)  # the bits below the 55 the result needs
        refine = b.icmp_unsigned("==", b.and_(high, mask), mask)
        refined_low = b.add(low, second)
        carry = b.zext(b.icmp_unsigned("<", refined_low, second), _I64)
        high = b.select(refine, b.add(high, carry), high)
        low = b.select(refine, refined_low, low)
        unsafe = b.or_(b.icmp_signed("<", q, _i64(-27)), b.icmp_signed(">", q, _i64(55)))
        self.decline_if(b.and_(b.icmp_unsigned("==", low, _i64(-1)), unsafe))

        upper = b.lshr(high, _i64(63))
        shift = b.add(upper, _i64(64 - 52 - 3))
        mantissa = b.lshr(high, shift)
        power = b.add(b.ashr(b.mul(q, _i64(152170 + 65536)), _i64(16)), _i64(63))
        power2 = b.add(b.sub(b.add(power, upper), lz), _i64(1023))
        self.decline_if(b.icmp_signed("<=", power2, _i64(0)))  # a subnormal
        # halfway between two doubles (only zeros shifted out): round to even
        halfway = b.and_(
            b.and_(b.icmp_unsigned("<=", low, _i64(1)), b.icmp_signed(">=", q, _i64(-4))),
            b.and_(
                b.icmp_signed("<=", q, _i64(23)),
                b.icmp_unsigned("==", b.and_(mantissa, _i64(3)), _i64(1)),
            ),
        )
        halfway = b.and_(halfway, b.icmp_unsigned("==", b.shl(mantissa, shift), high))
        mantissa = b.select(halfway, b.and_(mantissa, _i64(~1)), mantissa)
        mantissa = b.lshr(b.add(mantissa, b.and_(mantissa, _i64(1))), _i64(1))
        carried = b.icmp_unsigned(">=", mantissa, _i64(2 << 52))
        mantissa = b.select(carried, _i64(1 << 52), mantissa)
        power2 = b.add(power2, b.zext(carried, _I64))
        self.decline_if(b.icmp_signed(">=", power2, _i64(0x7FF)))  # past the largest double
        bits = b.or_(b.and_(mantissa, _i64(~(1 << 52))), b.shl(power2, _i64(52)))
        self.put("value", b.bitcast(bits, _DOUBLE))
        self.go("signed_value")


def _i64(value: int) -> ir.Constant:
    return ir.Constant(_I64, value)


def _byte(char: str) -> ir.Constant:
    return ir.Constant(_I8, ord(char))
