"""The compiled pass gives what Arrow (CSV) or polars (JSON lines) read, bit for bit,
or declines the chunk."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from pipeline.scoring import plain_numbers
from pipeline.scoring.json_lines import _parsed_by_polars

#: Spellings the pass takes; each must come out as Arrow reads it.
TAKEN = [
    "0", "1", "-1", "+1", "1.5", ".5", "5.", "-.5", "+.5", "-0", "-0.0", "00012", "0.000",
    "1e5", "1E5", "1e+5", "1e-5", "1.e5", "-2.5E-3", "0e999", "0.1", "0.2", "0.3",
    "9007199254740991", "123456789012345", "0.000123456789012345", "1e22", "1e-22",
    "4503599627370497e-22", "1.797693134862315", "nan", "inf", "-inf", "+inf", "",
    # past 2**53 or 10**22: Eisel-Lemire
    "0.30000000000000004", "1.7976931348623157", "9007199254740993", "9007199254740995",
    "1e23", "1e-23", "1.7976931348623157e308", "2.2250738585072014e-308", "1234567890123456789",
    "8.98846567431158e307", "-7.3177701707893310e+15", "1e-300", "9.999999999999999e22",
]  # fmt: skip
#: Spellings it declines: Arrow may take them (its own way) or refuse them.
DECLINED = [
    "NaN", "NAN", "-nan", "+nan", "Inf", "INF", "infinity", "-Infinity", " 1", "1 ", "\t1",
    " ", "12345678901234567890", "4.9e-324", "2.2250738585072011e-308", "1e400", "1e309",
    "1.7976931348623159e308", "0e99999", ".e5", "e5",
    "1e", "1e+", "..", "-", "+", "1-", "1.2.3", "0x10", "1_000", "NA", "null", "na", "nab",
    "in", "infx",
]  # fmt: skip


def arrow_read(text: bytes, columns: list[str], numbers: list[str]) -> pa.RecordBatch | None:
    """What ``CsvReader`` asks of Arrow for a typed chunk (None where Arrow refuses it)."""
    types = {name: pa.string() for name in columns} | dict.fromkeys(numbers, pa.float64())
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(text),
            read_options=pa_csv.ReadOptions(column_names=columns),
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                strings_can_be_null=False,
                null_values=[""],
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None
    return table.combine_chunks().to_batches()[0]


def assert_same(ours: pa.RecordBatch, arrows: pa.RecordBatch) -> None:
    assert ours.schema == arrows.schema
    for mine, theirs in zip(ours.columns, arrows.columns, strict=True):
        assert mine.is_valid().equals(theirs.is_valid())
        if pa.types.is_floating(mine.type):  # bit for bit: NaN's bits and -0.0 too
            bits = mine.fill_null(0.0).to_numpy().view(np.uint64)
            assert np.array_equal(bits, theirs.fill_null(0.0).to_numpy().view(np.uint64))
        else:
            assert mine.equals(theirs)


def parse(text: bytes, columns: list[str], numbers: list[str]) -> pa.RecordBatch | None:
    return plain_numbers.csv_chunk(pa.py_buffer(text), text.count(b"\n"), columns, numbers)


@pytest.mark.parametrize("token", TAKEN)
def test_a_plain_number_is_taken_and_read_as_arrow_reads_it(token: str) -> None:
    text = f"id-1,{token},x\nid-2,7,y\n".encode()
    ours = parse(text, ["id", "v", "note"], ["v"])
    arrows = arrow_read(text, ["id", "v", "note"], ["v"])
    assert ours is not None
    assert arrows is not None
    assert_same(ours, arrows)


@pytest.mark.parametrize("token", DECLINED)
def test_any_other_spelling_declines_the_chunk(token: str) -> None:
    assert parse(f"1,2\n3,{token}\n".encode(), ["a", "b"], ["a", "b"]) is None


def test_random_numbers_in_every_short_spelling_round_as_arrow_rounds_them() -> None:
    """200,000 numbers, scientific with 1 to 15 digits and fixed with 0 to 8 decimals
    (powers of ten from 10**-20 to 10**6): the same doubles."""
    rng = np.random.default_rng(7)
    signs = rng.choice([-1.0, 1.0], 200_000)
    values = signs * rng.uniform(1.0, 10.0, 200_000) * 10.0 ** rng.integers(-6, 7, 200_000)
    spellings = []
    for i, value in enumerate(values):
        spellings.append(f"{value:.{i % 15}e}" if i % 2 else f"{value:.{i % 9}f}")
    read_as_arrow_reads(spellings)


def read_as_arrow_reads(spellings: list[str]) -> npt.NDArray[np.float64]:
    """``spellings`` four to a row, taken and read as Arrow reads them: in their order."""
    spellings = spellings + ["0"] * (-len(spellings) % 4)
    lines = [",".join(spellings[i : i + 4]) for i in range(0, len(spellings), 4)]
    text = ("\n".join(lines) + "\n").encode()
    columns = ["a", "b", "c", "d"]
    ours = parse(text, columns, columns)
    arrows = arrow_read(text, columns, columns)
    assert ours is not None
    assert arrows is not None
    assert_same(ours, arrows)
    return np.column_stack([ours.column(i).to_numpy() for i in range(4)]).ravel()[: len(spellings)]


def test_text_columns_come_out_verbatim_between_the_numbers() -> None:
    text = "é,1,,2\n,3,a b,\n日本,-4.5,x,nan\n".encode()
    columns, numbers = ["w", "x", "y", "z"], ["x", "z"]
    ours = parse(text, columns, numbers)
    arrows = arrow_read(text, columns, numbers)
    assert ours is not None
    assert arrows is not None
    assert_same(ours, arrows)
    assert ours.column("w").to_pylist() == ["é", "", "日本"]
    assert ours.column("z").null_count == 1


@pytest.mark.parametrize(
    "text",
    [
        b"1,2\n3\n",  # a row short of a field
        b"1,2\n3,4,5\n",  # a row with one more
        b"1,2\n3,4\n5,6\n",  # more lines than rows
        b"1,2\n3,4",  # no last line end
        b"1,2\n\xff,4\n",  # not UTF-8 in a text column
    ],
)
def test_rows_that_do_not_fit_or_text_that_is_not_utf8_are_declined(text: bytes) -> None:
    assert plain_numbers.csv_chunk(pa.py_buffer(text), 2, ["a", "b"], ["b"]) is None


# ---- JSON lines: against polars, which reads these chunks otherwise


def polars_read(text: bytes, columns: list[str]) -> pa.RecordBatch | None:
    kinds: dict[str, pl.DataType] = {name: pl.Float64() for name in columns}
    return _parsed_by_polars(pa.py_buffer(text), kinds)


def json_parse(text: bytes, columns: list[str]) -> pa.RecordBatch | None:
    return plain_numbers.json_chunk(
        pa.py_buffer(text), text.count(b"\n"), dict.fromkeys(columns, "double")
    )


JSON_TAKEN = [
    "0", "-0", "-0.0", "-0e0", "0e999", "1.5", "-2.5e-3", "1E5", "1e+5", "0.1", "12",
    "123456789012345", "9007199254740991", "1e22", "1e-22", "0.000123456789012345", "null",
    "1e23", "0.30000000000000004", "9007199254740993", "-1.7976931348623157e+308",
]  # fmt: skip
JSON_DECLINED = [
    "+1", ".5", "5.", "01", "-01", "00", "-", "NaN", "nan", "inf", "-Infinity", "1e", "5e-324",
    "12345678901234567890", "true", '"1"', "[1]", "{}", "nul", "nulls", "1.5x", "1 2",
]  # fmt: skip


@pytest.mark.parametrize("token", JSON_TAKEN)
def test_a_plain_json_number_is_taken_and_read_as_polars_reads_it(token: str) -> None:
    text = f'{{"a": 7, "b": {token}}}\n{{"a": {token}, "b": -3.25}}\n'.encode()
    ours = json_parse(text, ["a", "b"])
    theirs = polars_read(text, ["a", "b"])
    assert ours is not None
    assert theirs is not None
    assert_same(ours, theirs)


@pytest.mark.parametrize("token", JSON_DECLINED)
def test_any_other_json_value_declines_the_chunk(token: str) -> None:
    assert json_parse(f'{{"a": 1, "b": {token}}}\n'.encode(), ["a", "b"]) is None


@pytest.mark.parametrize(
    "text",
    [b'{"a":1,"b":2}\n', b'{"a": 1, "b": 2}\n', b'{ "a" : 1 ,  "b" :2 }\n', b'{"a":1,"b":2 }\n'],
)
def test_records_with_spaces_between_their_tokens_are_taken(text: bytes) -> None:
    ours = json_parse(text, ["a", "b"])
    assert ours is not None
    assert ours.to_pylist() == [{"a": 1.0, "b": 2.0}]


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": 1}\n',  # a key missing
        b'{"a": 1, "b": 2, "c": 3}\n',  # a key more
        b'{"b": 2, "a": 1}\n',  # another order
        b'{"a": 1, "a": 2}\n',  # a key twice
        b'{"a":\t1, "b": 2}\n',  # whitespace other than spaces
        b'{"a": 1, "b": 2}\r\n',
        b'{"a": 1, "b": 2} \n',
        b'{"a": 1, "b": 2}',  # no last line end
        b'{"a": 1, "b": 2}{"a": 1, "b": 2}\n',
        b'{"\\u0061": 1, "b": 2}\n',  # a key spelled otherwise
        b'{"a": 1, "b": 2}\n{"a": 1, "b": 2}\n',  # more lines than records
    ],
)
def test_records_of_another_shape_are_declined(text: bytes) -> None:
    assert plain_numbers.json_chunk(pa.py_buffer(text), 1, {"a": "double", "b": "double"}) is None


def test_random_json_numbers_round_as_polars_rounds_them() -> None:
    """200,000 numbers as JSON spells them, scientific with 1 to 15 digits and whole or
    fixed with up to 8 decimals: the same doubles as polars reads."""
    rng = np.random.default_rng(11)
    signs = rng.choice([-1.0, 1.0], 200_000)
    values = signs * rng.uniform(1.0, 10.0, 200_000) * 10.0 ** rng.integers(-6, 7, 200_000)
    spellings = [
        f"{value:.{i % 15}e}" if i % 2 else f"{value:.{i % 9}f}" for i, value in enumerate(values)
    ]
    names = ["a", "b", "c", "d"]
    lines = [
        '{"a": %s, "b": %s, "c": %s, "d": %s}' % tuple(spellings[i : i + 4])  # noqa: UP031
        for i in range(0, len(spellings), 4)
    ]
    text = ("\n".join(lines) + "\n").encode()
    ours = json_parse(text, names)
    theirs = polars_read(text, names)
    assert ours is not None
    assert theirs is not None
    assert_same(ours, theirs)


def any_doubles(count: int, seed: int) -> np.ndarray:
    """Doubles from every binade, normal ones (subnormals are declined), signs both."""
    bits = np.random.default_rng(seed).integers(0, 2**64, count, dtype=np.uint64)
    values = bits.view(np.float64)
    return values[np.isfinite(values) & (np.abs(values) >= np.finfo(np.float64).tiny)]


def halfway_integers(count: int, seed: int) -> list[int]:
    """Whole numbers of up to 19 digits exactly between two doubles: ties, rounded to even."""
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        width = int(rng.integers(54, 64))  # 2**53 .. 2**63: an ulp of 2 .. 2**10
        ulp = 1 << (width - 53)
        low = (1 << (width - 1)) + int(rng.integers(0, 1 << 52)) * ulp
        numbers.append(low + ulp // 2)
    return numbers


def test_every_double_s_shortest_and_longest_spelling_is_read_as_python_and_arrow_read_it() -> None:
    """300,000 doubles from every binade as ``repr`` spells them (up to 17 digits) and
    with 19 significant digits, and 20,000 ties: each the double Python's correctly
    rounded ``float`` reads, and Arrow's. None is declined."""
    values = any_doubles(150_000, 5)
    spellings = [repr(v) for v in values.tolist()] + [f"{v:.18e}" for v in values.tolist()]
    spellings += [str(n) for n in halfway_integers(20_000, 6)]
    read = read_as_arrow_reads(spellings)
    expected = np.array([float(s) for s in spellings])
    assert np.array_equal(read.view(np.uint64), expected.view(np.uint64))


def test_every_double_in_json_is_read_as_polars_reads_it() -> None:
    values = any_doubles(100_000, 8).tolist()
    values += [float(n) for n in halfway_integers(5_000, 9)]
    values += [0.0] * (-len(values) % 2)
    lines = [json.dumps({"a": values[i], "b": values[i + 1]}) for i in range(0, len(values), 2)]
    text = ("\n".join(lines) + "\n").encode()
    ours = json_parse(text, ["a", "b"])
    theirs = polars_read(text, ["a", "b"])
    assert ours is not None
    assert theirs is not None
    assert_same(ours, theirs)


POLARS_KINDS = {"double": pl.Float64(), "int64": pl.Int64(), "bool": pl.Boolean()}


@pytest.mark.parametrize(
    ("kind", "token", "taken"),
    [
        ("int64", "12", True),
        ("int64", "-0", True),
        ("int64", "-900719925474099312", True),  # 18 digits
        ("int64", "null", True),
        ("int64", "1234567890123456789", False),  # 19 digits: declined, polars may read it
        ("int64", "1.0", False),
        ("int64", "1e3", False),
        ("int64", "01", False),
        ("int64", "true", False),
        ("int64", "+1", False),
        ("bool", "true", True),
        ("bool", "false", True),
        ("bool", "null", True),
        ("bool", "1", False),
        ("bool", "True", False),
        ("bool", "tru", False),
        ("bool", "falsey", False),
    ],
)
def test_whole_numbers_and_booleans_are_read_as_polars_reads_them(
    kind: str, token: str, taken: bool
) -> None:
    """A key polars reads as whole numbers or booleans, beside a number key."""
    text = f'{{"x": 1.5, "k": {token}}}\n{{"x": null, "k": {token}}}\n'.encode()
    columns = {"x": "double", "k": kind}
    ours = plain_numbers.json_chunk(pa.py_buffer(text), 2, columns)
    if not taken:
        assert ours is None
        return
    theirs = _parsed_by_polars(
        pa.py_buffer(text), {name: POLARS_KINDS[k] for name, k in columns.items()}
    )
    assert ours is not None
    assert theirs is not None
    assert ours.schema == theirs.schema
    assert ours.to_pylist() == theirs.to_pylist()


def test_many_whole_numbers_and_booleans_are_read_as_polars_reads_them() -> None:
    rng = np.random.default_rng(12)
    whole = rng.integers(-(10**18) + 1, 10**18, 20_000)
    lines = [
        json.dumps({"id": int(n) if i % 7 else None, "flag": [True, False, None][i % 3]})
        for i, n in enumerate(whole)
    ]
    text = ("\n".join(lines) + "\n").encode()
    columns = {"id": "int64", "flag": "bool"}
    ours = plain_numbers.json_chunk(pa.py_buffer(text), len(lines), columns)
    theirs = _parsed_by_polars(pa.py_buffer(text), {"id": pl.Int64(), "flag": pl.Boolean()})
    assert ours is not None
    assert theirs is not None
    assert ours.equals(theirs)


def test_where_llvm_cannot_generate_the_pass_every_chunk_goes_to_arrow(
    no_number_pass: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plain_numbers.warm()
    assert parse(b"1,2\n", ["a", "b"], ["a", "b"]) is None
    assert json_parse(b'{"a": 1}\n', ["a"]) is None
    assert "no compiled pass" in caplog.text
    monkeypatch.undo()  # LLVM back: the pass is generated again, not the failure kept
    plain_numbers._functions.cache_clear()
    assert parse(b"1,2\n", ["a", "b"], ["a", "b"]) is not None


def test_a_chunk_of_long_texts_is_left_to_arrow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gathering a text column costs nine bytes a byte; past a limit the chunk is declined."""
    text = b"1,abcdefgh\n2,ijklmnop\n"
    assert parse(text, ["x", "note"], ["x"]) is not None
    monkeypatch.setattr(plain_numbers, "_MAX_TEXT_BYTES", 15)
    assert parse(text, ["x", "note"], ["x"]) is None


# ---- mutated chunks: what the pass takes, Arrow or polars read the same way

#: Bytes a mutation writes: parts of numbers, of words the pass knows, separators and junk.
ALPHABET = b'0123456789.eE+-,\n nainfrulstx\t\xff{}:"['


def mutated(base: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(base)
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.integers(0, len(data) - 1))  # the last line end stays
        choice = int(rng.integers(0, 3))
        if choice == 0:
            data[at] = ALPHABET[int(rng.integers(0, len(ALPHABET)))]
        elif choice == 1:
            data.insert(at, ALPHABET[int(rng.integers(0, len(ALPHABET)))])
        else:
            del data[at]
    return bytes(data)


def test_mutated_csv_chunks_are_read_as_arrow_reads_them_or_declined() -> None:
    """3,000 chunks, each a few bytes off a plain one: every chunk the pass takes, Arrow
    reads, to the same values; a chunk Arrow refuses, the pass declines too."""
    rng = np.random.default_rng(21)
    base = b"".join(
        f"id{i},{rng.normal():.6f},{rng.normal() * 1e5:.3e},{float(rng.normal())!r}\n".encode()
        for i in range(6)
    )
    columns, numbers = ["id", "a", "b", "c"], ["a", "b", "c"]
    taken = 0
    for _ in range(3_000):
        text = mutated(base, rng)
        if b'"' in text:
            continue  # a quote hands the file to Arrow's streaming reader before this pass
        lines = [line for line in text.split(b"\n")[:-1] if line not in (b"", b"\r")]
        text = b"".join(line + b"\n" for line in lines)  # blank lines, as ``Lines`` drops them
        ours = parse(text, columns, numbers)
        if ours is None:
            continue
        taken += 1
        arrows = arrow_read(text, columns, numbers)
        assert arrows is not None, text
        assert_same(ours, arrows)
    assert taken > 300


def test_mutated_json_chunks_are_read_as_polars_reads_them_or_declined() -> None:
    rng = np.random.default_rng(22)
    base = b"".join(
        (
            json.dumps({"a": round(float(rng.normal()), 6), "b": float(rng.normal()), "k": i})
            + "\n"
        ).encode()
        for i in range(6)
    )
    columns = {"a": "double", "b": "double", "k": "int64"}
    kinds: dict[str, pl.DataType] = {"a": pl.Float64(), "b": pl.Float64(), "k": pl.Int64()}
    taken = 0
    for _ in range(3_000):
        text = mutated(base, rng)
        rows = text.count(b"\n")
        ours = plain_numbers.json_chunk(pa.py_buffer(text), rows, columns)
        if ours is None:
            continue
        taken += 1
        theirs = _parsed_by_polars(pa.py_buffer(text), kinds)
        assert theirs is not None, text
        assert_same(ours, theirs)
    assert taken > 300


def test_each_power_of_five_is_its_128_bit_truncation_or_just_above_its_reciprocal() -> None:
    """The table Eisel-Lemire reads, as fast_float makes it: 5**q scaled into [2**127,
    2**128) and truncated; for q in [-27, 0), just above the scaled 1/5**-q, by at most
    one unit; below, within a unit of it (a longer quotient, truncated)."""
    for q in range(-342, 309):
        high, low = (w % 2**64 for w in plain_numbers._FIVES[2 * (q + 342) : 2 * (q + 342) + 2])
        entry = high << 64 | low
        exact = Fraction(5) ** q
        while exact < 2**127:
            exact *= 2
        while exact >= 2**128:
            exact /= 2
        if q >= 0:
            assert 0 <= exact - entry < 1, q
        elif q >= -27:
            assert 0 < entry - exact <= 1, q
        else:
            assert abs(entry - exact) < 1, q


def test_numbers_near_every_scale_of_a_small_power_of_ten_round_as_python_rounds_them() -> None:
    """17 to 19 digits times 10**-38 .. 10**-1, where the table's reciprocals are exact
    to the last bit only if generated as fast_float does: the same doubles as Python."""
    rng = np.random.default_rng(31)
    spellings = []
    for d in rng.integers(17, 20, 100_000).tolist():
        whole = "".join(map(str, rng.integers(0, 10, d).tolist())).lstrip("0") or "1"
        spellings.append(f"{whole}e{int(rng.integers(-38 - d, -d))}")
    read = read_as_arrow_reads(spellings)
    expected = np.array([float(s) for s in spellings])
    assert np.array_equal(read.view(np.uint64), expected.view(np.uint64))
