"""Output parts: small while outputs are small, yet any object S3 takes fits in 10,000."""

from __future__ import annotations

from pipeline.storage import MAX_PARTS, PART_BYTES, part_size

TIB = 1024**4


def test_parts_grow_so_ten_thousand_hold_s3s_largest_object() -> None:
    sizes = [part_size(n) for n in range(1, MAX_PARTS + 1)]

    assert sum(sizes) >= 5 * TIB
    assert sizes[0] == sizes[999] == PART_BYTES  # the first 8 GiB of output: 8 MiB parts
    assert sizes[1000] == 2 * PART_BYTES
    assert max(sizes) <= 5 * 1024**3  # S3's largest part
    assert sizes == sorted(sizes)


def test_the_first_part_size_is_a_parameter_for_small_outputs() -> None:
    assert part_size(1, 5 * 1024**2) == 5 * 1024**2
    assert part_size(1001, 5 * 1024**2) == 10 * 1024**2
