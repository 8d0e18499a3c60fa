"""advise_huge_pages: large private anonymous mappings move to transparent huge pages, the
pages already in use included (the kernel's own account, /proc/self/smaps); small, named and
file mappings are left."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

import pytest

from worker.huge_pages import MIN_BYTES, _large_anonymous_mappings, advise_huge_pages, thp_mode

madvise_mode = pytest.mark.skipif(
    thp_mode() != "madvise",
    reason=f"the kernel's THP mode is {thp_mode()!r}: advice changes nothing unless it is madvise",
)


def smaps_field(address: int, field: str) -> int:
    """``field`` ("THPeligible", "AnonHugePages" in kB) of the smaps entry of the mapping that
    holds ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and ":" not in head:
            start, end = (int(bound, 16) for bound in head.split("-"))
            inside = start <= address < end
        elif inside and head == f"{field}:":
            return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def state(address: int) -> tuple[bool, int]:
    """(eligible for huge pages, kB of it on huge pages)."""
    return bool(smaps_field(address, "THPeligible")), smaps_field(address, "AnonHugePages")


@madvise_mode
def test_a_large_anonymous_mapping_moves_to_huge_pages_and_a_file_mapping_does_not(tmp_path):
    size = MIN_BYTES + (4 << 20)
    large = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    large.write(b"\1" * size)  # in use on 4 KiB pages, as a BLAS buffer after its first GEMM
    backing = tmp_path / "file"
    backing.write_bytes(bytes(size))
    with backing.open("r+b") as handle:
        mapped_file = mmap.mmap(handle.fileno(), 0, flags=mmap.MAP_PRIVATE)
    middle = {  # an address inside each, clear of a merged neighbour's edge
        name: ctypes.addressof(ctypes.c_char.from_buffer(region)) + size // 2
        for name, region in {"large": large, "file": mapped_file}.items()
    }
    try:
        before = {name: state(at) for name, at in middle.items()}

        advised = advise_huge_pages()

        after = {name: state(at) for name, at in middle.items()}
    finally:
        large.close()
        mapped_file.close()
    assert before == {"large": (False, 0), "file": (False, 0)}
    assert after["large"][0] and after["large"][1] >= MIN_BYTES // 1024  # collapsed too
    assert after["file"] == (False, 0)
    assert advised >= MIN_BYTES


def test_only_private_anonymous_read_write_mappings_of_the_minimum_size_are_chosen(tmp_path):
    maps = tmp_path / "maps"
    maps.write_text(
        "7f0000000000-7f0002000000 rw-p 00000000 00:00 0 \n"  # 32 MiB anonymous: chosen
        "7f0002000000-7f0002800000 rw-p 00000000 00:00 0 \n"  # 8 MiB (a thread stack)
        "7f0003000000-7f0005000000 rw-s 00000000 00:01 5 /dev/shm/segment\n"  # shared file
        "7f0006000000-7f0008000000 r--p 00000000 08:01 7 /usr/lib/libopenblas.so\n"
        "7f0009000000-7f000b000000 rw-p 00000000 00:00 0 [heap]\n"  # named
        "7f000c000000-7f000e000000 ---p 00000000 00:00 0 \n"  # a guard, no access
        "7f000e000000-7f0010000000 rw-p 00000000 00:00 0\n"  # 32 MiB, no trailing blank
    )

    chosen = _large_anonymous_mappings(maps, MIN_BYTES)

    assert chosen == [(0x7F0000000000, 0x7F0002000000), (0x7F000E000000, 0x7F0010000000)]
