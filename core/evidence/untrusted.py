"""Opening what a hostile party made: a file a Case, its checks, a task folder or another
run left behind.

One place for the rules every host-side reader follows (issue 22): a path is never followed
(`O_NOFOLLOW` on every component below a trusted folder, so neither the file nor a folder on
the way may be a link), a FIFO is never waited on (`O_NONBLOCK`, then judged on the opened
file), sockets and devices are refused, and a read is bounded in bytes; `off_loop` bounds
one in time too, on a daemon thread, so a reader stuck in the kernel can never hold the
event loop, SIGINT or the run's report. The readers of a run (`runs`, `follow`, `validate`,
the leak scan, the dashboard) and of a task (`core/run/task.py`) use these, never `open`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from core.errors import HarnessError

T = TypeVar("T")

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFile(OSError, HarnessError):
    """A file that is a link, a FIFO, a socket, a device or a folder: nothing a reader of
    hostile files opens. Its message says which."""


class TooLarge(OSError, HarnessError):
    """A file over the reader's byte bound."""


def kind_of(mode: int) -> str:
    """What a file is, in words for a reason line ("a FIFO", "a symbolic link", ...)."""
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return word
    return "not a regular file"


def _open_nofollow(path: str | Path, dir_fd: int | None = None, flags: int = _FLAGS) -> int:
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "a symbolic link, never followed") from None
        raise


def open_regular(path: str | Path, *, beneath: Path | None = None) -> BinaryIO:
    """`path` opened for reading, only if it is a regular file, judged on the opened file
    itself: a link is not followed (it could point anywhere) and a FIFO is not waited on
    (it would block the reader forever). With `beneath` (a folder the harness trusts),
    `path` is relative to it and no folder on the way may be a link either. Raises OSError
    as open does (FileNotFoundError, PermissionError), or NotRegularFile saying what it is
    instead."""
    if beneath is None:
        fd = _open_nofollow(path)
    else:
        parts = Path(path).parts
        if not parts or Path(path).is_absolute() or ".." in parts:
            raise NotRegularFile(errno.EINVAL, f"{path}: not a path inside {beneath}")
        folder = _open_nofollow(beneath, flags=_FLAGS | os.O_DIRECTORY)
        try:
            for part in parts[:-1]:
                try:
                    inner = _open_nofollow(part, folder, _FLAGS | os.O_DIRECTORY)
                except NotADirectoryError:
                    raise NotRegularFile(errno.ENOTDIR, f"{part}: not a folder") from None
                os.close(folder)
                folder = inner
            fd = _open_nofollow(parts[-1], folder)
        finally:
            os.close(folder)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, f"{kind_of(mode)}, not a regular file")
    return os.fdopen(fd, "rb")


def read_bounded(path: str | Path, limit: int, *, beneath: Path | None = None) -> bytes:
    """A regular file's bytes (see open_regular), at most `limit` of them: TooLarge past it
    (a Case can leave a file of any size, or a sparse one of terabytes)."""
    with open_regular(path, beneath=beneath) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(errno.EFBIG, f"larger than {limit} bytes")
    return data


def describe(path: Path) -> str:
    """What is at `path`, by lstat (nothing opened or followed): "a FIFO", "a symbolic link
    to X", "missing"."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    return kind_of(mode)


async def off_loop(fn: Callable[[], T], timeout: float, what: str) -> T:
    """`fn()` on a daemon thread, awaited at most `timeout` seconds: TimeoutError naming
    `what` past that. A daemon thread, not the loop's executor: a read stuck in the kernel
    (a FIFO on a filesystem that ignores O_NONBLOCK, a hung mount) is abandoned, and neither
    the loop nor the interpreter's exit waits for it (asyncio.run joins its executor)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: object) -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)  # type: ignore[arg-type]
        else:
            future.set_exception(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            value = fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            outcome: tuple[bool, object] = (False, exc)
        else:
            outcome = (True, value)
        with contextlib.suppress(RuntimeError):  # the loop closed: no one waits any more
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=f"cto-harness read {what}", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise TimeoutError(f"{what}: not read within {timeout:g} s") from None
