"""Reading a run's file by its data, not its size: a sparse file's holes read as zeros
without being read, and a digest of the content that costs nothing for them.

Why: a Case can leave `truncate -s 4G big` (a 4 GiB file, nothing on disk). Read byte by
byte it cost the leak scan 21 s and the artifact hashes as much again, after the Case and
outside its timeout; `truncate -s 1P` would never end. Holes hold only zero bytes, and no
form of a secret holds a zero byte, so the leak scan reads only the blocks that hold data.
The digest is a function of the content alone (the same for the file written densely, or
copied by a tool that makes other holes), so `validate` agrees wherever the run is read.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator

BLOCK = 1 << 16
"""The digest's block and the unit a sparse file is read in: a hole shorter than a block
is read (as zeros) with the data around it."""
READ = 1 << 20
_ZERO_BLOCK = hashlib.sha256(bytes(BLOCK)).digest()
_DIGEST_TAG = b"cto-harness blocks v1\0"


def looks_sparse(st: os.stat_result) -> bool:
    """Fewer bytes allocated than the file's size: it has holes worth finding."""
    return st.st_blocks * 512 < st.st_size


def data_ranges(fd: int, size: int, sparse: bool) -> list[tuple[int, int]]:
    """The byte ranges that may hold data, widened to whole blocks and merged: the whole
    file unless `sparse`; else what SEEK_DATA / SEEK_HOLE report (the whole file where the
    file system cannot say)."""
    if not sparse or size == 0:
        return [(0, size)] if size else []
    ranges: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but a hole from here to the end
                break
            return [(0, size)]  # EINVAL/EOPNOTSUPP: no hole information here
        end = min(size, os.lseek(fd, start, os.SEEK_HOLE))
        lo, hi = start // BLOCK * BLOCK, min(size, -(-end // BLOCK) * BLOCK)
        if ranges and lo <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(hi, ranges[-1][1]))
        else:
            ranges.append((lo, hi))
        pos = end
    return ranges


def read_ranges(fd: int, ranges: list[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of each range in pieces of at most READ bytes, in order."""
    for lo, hi in ranges:
        pos = lo
        while pos < hi:
            chunk = os.pread(fd, min(READ, hi - pos), pos)
            if not chunk:  # the file shrank while being read
                return
            yield pos, chunk
            pos += len(chunk)


class BlockDigest:
    """SHA-256 over the file's size and, block by block, each block's SHA-256, where a run
    of whole all-zero blocks counts as its length instead: one value for one content,
    computed from the data ranges alone. Feed pieces in order, at block-aligned offsets
    (as `read_ranges` gives them over `data_ranges`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._outer = hashlib.sha256(_DIGEST_TAG + size.to_bytes(8, "big"))
        self._next_block = 0
        self._zeros = 0
        self._partial = b""

    def feed(self, offset: int, data: bytes) -> None:
        if self._partial:
            offset, data = offset - len(self._partial), self._partial + data
        self._skip_to(offset // BLOCK)
        view = memoryview(data)
        whole = len(view) if offset + len(view) >= self.size else len(view) // BLOCK * BLOCK
        for at in range(0, whole, BLOCK):
            self._block(hashlib.sha256(view[at:at + BLOCK]).digest())
        self._partial = bytes(view[whole:])

    def _skip_to(self, block: int) -> None:
        """Blocks before `block` that were not fed: holes, all zeros."""
        blocks, short = -(-self.size // BLOCK), self.size % BLOCK
        while self._next_block < block:
            if short and self._next_block == blocks - 1:  # the last, shorter block
                self._block(hashlib.sha256(bytes(short)).digest())
            else:
                run = min(block, blocks - (1 if short else 0)) - self._next_block
                self._zeros += run
                self._next_block += run

    def _block(self, digest: bytes) -> None:
        self._next_block += 1
        if digest == _ZERO_BLOCK:
            self._zeros += 1
            return
        self._flush_zeros()
        self._outer.update(b"D" + digest)

    def _flush_zeros(self) -> None:
        if self._zeros:
            self._outer.update(b"Z" + self._zeros.to_bytes(8, "big"))
            self._zeros = 0

    def hexdigest(self) -> str:
        if self._partial:
            self._block(hashlib.sha256(self._partial).digest())
            self._partial = b""
        self._skip_to(-(-self.size // BLOCK))
        self._flush_zeros()
        return self._outer.hexdigest()


def file_digest(fd: int, st: os.stat_result) -> str:
    """The content digest of an open regular file (see BlockDigest)."""
    digest = BlockDigest(st.st_size)
    for offset, chunk in read_ranges(fd, data_ranges(fd, st.st_size, looks_sparse(st))):
        digest.feed(offset, chunk)
    return digest.hexdigest()
