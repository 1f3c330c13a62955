"""Every model exchange of a run, whole: `backend/exchanges/`, its writer and its reader.

The relay hands each forwarded request's body and its answer (a whole response, or a stream
already reassembled by `core.relay.recording`) to `ExchangeStore.write`
(core/evidence/exchange_store.py); readers open the folder with `ExchangeFolder`, here.
The layout (format `cto-harness.exchange/1`):

    backend/exchanges/
      index.jsonl            one line per exchange, appended after its file is complete:
                             seq, file, ts, api, route, status, stream, models, latency,
                             tokens, bytes, cut — enough to list a run's exchanges without
                             opening one of them
      e/000001.json          one exchange: its metadata, the request's top-level fields with
                             every list (messages, input, tools) as item references — or as
                             an earlier exchange's first n references plus the new ones —
                             and every long string as a blob reference, and the answer
      blobs/ab/abcd….json    one JSON value (a message, an input item, a tool definition, a
                             long instruction), named by the SHA-256 of its bytes

Content addressing is what makes whole exchanges affordable: an agent resends its whole
history on every turn, and here each message is stored once, however often it is resent; an
exchange file grows by a reference per message (~70 bytes), not by the history.

Everything is redacted before it is hashed or written: the secret's forms never reach a
blob, and a blob's name is the hash of what is on disk, so `validate` and a reader can
check it. The folder is bounded per run (`CTO_HARNESS_EXCHANGES_MAX_BYTES`, default
512 MiB): past it an exchange keeps its metadata and says what was cut (`cut`).

Reading treats the folder as hostile (a Case cannot write there, but a user may edit it, or
a copied run may hold anything): no link is followed, no FIFO is waited on, every read is
bounded, and what cannot be read is returned as a `problem` with the reason — never raised.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evidence.rundir import NotRegularFile, open_regular

FORMAT = "cto-harness.exchange/1"
READ_LIMIT = 256 << 20
"""The most a reader reads of one file: well above any exchange the relay can write (its
bodies are bounded at 64 MiB), far below what would exhaust a dashboard."""
INDEX_LINE_LIMIT = 64 * 1024
MAX_CHAIN = 64
"""An exchange's list refers to an earlier one's at most this many links deep."""
_REF = re.compile(r"[0-9a-f]{64}")
_SEQ_FILE = re.compile(r"\d{6,}\.json")


@dataclass
class Entry:
    """One line of the index (or, with no index, one exchange file found by listing)."""

    seq: int
    file: str
    meta: dict[str, Any]
    problem: str | None = None


@dataclass
class Loaded:
    """One exchange read back: `request` is the body as the agent sent it (items and long
    strings put back from their blobs), `response` the answer; what could not be read is
    in `problems`, and a body that was not JSON is in `request_raw`/`response_raw`."""

    seq: int
    meta: dict[str, Any]
    request: dict[str, Any] | None = None
    request_raw: str | None = None
    response: Any = None
    response_raw: str | None = None
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The request's lists as item descriptors (`ref`, `role`/`type`, `call_id`)."""
    problems: list[str] = field(default_factory=list)


def read_bounded(path: Path, limit: int = READ_LIMIT) -> bytes:
    """A regular file's bytes (no link followed, no FIFO waited on), at most `limit`:
    raises OSError (NotRegularFile for a link or FIFO) or ValueError when over."""
    with open_regular(path) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise ValueError(f"{path.name} is over {limit:,} bytes")
        return fh.read(limit + 1)[:limit]


def _why(exc: Exception) -> str:
    if isinstance(exc, NotRegularFile):
        return exc.strerror or "not a regular file"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc) or type(exc).__name__


class ExchangeFolder:
    """A run's `backend/exchanges/`, read lazily: `entries()` reads only the index (grown
    since the last call, for a live run); `load(seq)` one exchange; `blob(ref)` one item."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lines: list[bytes | Entry] = []
        self._no_index = False
        self._listing = False
        self._offset = 0
        self._partial = b""
        self._blob_cache: dict[str, tuple[Any, str | None]] = {}
        self._lists: dict[tuple[int, str], list[Any]] = {}
        """Recently resolved item lists by (seq, name): reading in order, each exchange's
        base is the one just read."""
        self.problems: list[str] = []

    @classmethod
    def of_run(cls, run_dir: Path) -> ExchangeFolder:
        return cls(run_dir / "backend" / "exchanges")

    def exists(self) -> bool:
        return self.folder.is_dir() and not self.folder.is_symlink()

    def refresh(self) -> int:
        """Read what the index grew by (lines kept raw, parsed when asked for: a reader
        of the first steps of 5,000 exchanges parses a few index lines, not all); the
        number of exchanges so far."""
        index = self.folder / "index.jsonl"
        if not self.exists() or self._no_index:
            return len(self._lines)
        try:
            with open_regular(index) as fh:
                fh.seek(self._offset)
                data = fh.read(READ_LIMIT)
        except FileNotFoundError:
            # Not (yet) there: a live run's folder exists before its first exchange ends
            # (the in-flight record is written first). Listed from e/ for now, and the
            # index looked for again next time, not given up on.
            self._listing = True
            self._lines = list(self._listed())
            return len(self._lines)
        except OSError as exc:
            self._note(f"exchanges/index.jsonl: {_why(exc)}; exchanges listed from e/")
            self._no_index = True
            self._lines = list(self._listed())
            return len(self._lines)
        if self._listing:
            self._listing, self._lines, self._partial = False, [], b""
        self._offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        self._lines.extend(data[:cut].splitlines())
        return len(self._lines)

    def count(self) -> int:
        return len(self._lines)

    def entry(self, i: int) -> Entry:
        """The i-th exchange (0-based) of those read so far."""
        got = self._lines[i]
        if isinstance(got, bytes):
            got = self._lines[i] = self._entry(got, i + 1)
        return got

    def entries(self) -> list[Entry]:
        """Every exchange recorded so far, in order; reads only what the index grew by."""
        self.refresh()
        return [self.entry(i) for i in range(len(self._lines))]

    def _entry(self, line: bytes, n: int) -> Entry:
        if len(line) > INDEX_LINE_LIMIT:
            return Entry(n, "", {}, f"index line {n} is over {INDEX_LINE_LIMIT:,} bytes")
        try:
            meta = json.loads(line)
        except (ValueError, RecursionError):
            return Entry(n, "", {}, f"index line {n} is not JSON")
        if not isinstance(meta, dict):
            return Entry(n, "", {}, f"index line {n} is not a JSON object")
        seq, name = meta.get("seq"), meta.get("file")
        if not isinstance(seq, int) or not isinstance(name, str) or \
                not name.startswith("e/") or not _SEQ_FILE.fullmatch(name[2:]):
            return Entry(n, "", meta, f"index line {n} names no exchange file (seq, file)")
        return Entry(seq, name, meta)

    def _listed(self) -> list[Entry]:
        """No index (a hand-edited folder): the exchange files in e/, by name."""
        try:
            names = sorted(n for n in os.listdir(self.folder / "e") if _SEQ_FILE.fullmatch(n))
        except OSError:
            return []
        return [Entry(int(n[:-5]), f"e/{n}", {}) for n in names]

    def _note(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)

    def load(self, entry: Entry, items: bool = True) -> Loaded:
        """One exchange; never raises for what the folder holds. `items=False` leaves the
        request's lists out of `request` (their descriptors are in `Loaded.items`, each
        value one `blob(ref)` away): a transcript reads only the items a turn added, not
        the whole history the agent resent."""
        out = Loaded(entry.seq, dict(entry.meta))
        if entry.problem:
            out.problems.append(entry.problem)
            return out
        try:
            doc = json.loads(read_bounded(self.folder / entry.file))
        except (OSError, ValueError, RecursionError) as exc:
            out.problems.append(f"exchanges/{entry.file}: {_why(exc)}")
            return out
        if not isinstance(doc, dict):
            out.problems.append(f"exchanges/{entry.file}: not a JSON object")
            return out
        out.meta.update({k: v for k, v in doc.items() if k not in ("request", "response")})
        if doc.get("cut"):
            out.problems.append(str(doc["cut"]))
        self._load_request(doc.get("request"), out, entry.file, items)
        response = doc.get("response")
        if isinstance(response, dict):
            if "body" in response:
                out.response = response["body"]
            elif isinstance(response.get("raw"), str):
                out.response_raw = response["raw"]
                out.problems.append(str(response.get("problem") or "the answer is not JSON"))
            out.problems.extend(str(p) for p in response.get("problems") or [])
        return out

    def _load_request(self, request: Any, out: Loaded, name: str, whole: bool) -> None:
        if not isinstance(request, dict):
            return
        if isinstance(request.get("raw"), str):
            out.request_raw = request["raw"]
            out.problems.append(str(request.get("problem") or "the request is not JSON"))
            return
        body = dict(request.get("fields") or {}) if isinstance(
            request.get("fields"), dict) else {}
        items = request.get("items") if isinstance(request.get("items"), dict) else {}
        for key, refs in (items or {}).items():
            if isinstance(refs, dict):
                refs = self._resolve(out.seq, key, refs, out.problems, MAX_CHAIN + 1)
            if not isinstance(refs, list):
                out.problems.append(f"exchanges/{name}: request.items.{key} is not a list")
                continue
            descs = [r if isinstance(r, dict) else {"ref": None} for r in refs]
            out.items[key] = descs
            if whole:
                body[key] = [self.blob(d.get("ref"))[0] for d in descs]
        strings = request.get("strings") if isinstance(request.get("strings"), dict) else {}
        for key, ref in (strings or {}).items():
            body[key] = self.blob(ref)[0]
        out.request = body

    def _resolve(self, seq: int, key: str, delta: dict[str, Any], problems: list[str],
                 hops: int) -> list[Any] | None:
        """A list stored as an earlier exchange's first n items plus `more`."""
        base, more = delta.get("base"), delta.get("more")
        if not (isinstance(base, list) and len(base) == 2 and all(
                isinstance(b, int) for b in base) and isinstance(more, list)):
            problems.append(f"request.items.{key} of exchange {seq} is neither a list nor "
                            "a base and more")
            return None
        base_seq, n = base
        cached = self._lists.get((base_seq, key))
        if cached is None:
            if hops <= 0 or base_seq >= seq:
                problems.append(f"request.items.{key} of exchange {seq} refers on too far "
                                "(or forward)")
                return None
            cached = self._list_of(base_seq, key, problems, hops - 1)
            if cached is None:
                return None
        if len(cached) < n:
            problems.append(f"exchange {base_seq}'s {key} has fewer than {n} items")
            return None
        full = cached[:n] + more
        if len(self._lists) > 64:
            self._lists.clear()
        self._lists[(seq, key)] = full
        return full

    def _list_of(self, seq: int, key: str, problems: list[str], hops: int
                 ) -> list[Any] | None:
        try:
            doc = json.loads(read_bounded(self.folder / "e" / f"{seq:06d}.json"))
            got = doc["request"]["items"][key]
        except (OSError, ValueError, RecursionError, KeyError, TypeError) as exc:
            problems.append(f"the base of this exchange's {key}, exchange {seq}, cannot be "
                            f"read: {_why(exc)}")
            return None
        if isinstance(got, dict):
            return self._resolve(seq, key, got, problems, hops)
        if isinstance(got, list):
            self._lists[(seq, key)] = got
            return got
        problems.append(f"exchange {seq}'s {key} is not a list")
        return None

    def blob(self, ref: Any) -> tuple[Any, str | None]:
        """An item's value and None, or a placeholder and the reason it could not be read
        (a name that is not a SHA-256, a missing or replaced file, a link, bad JSON, or
        bytes whose hash is not their name)."""
        if not isinstance(ref, str) or not _REF.fullmatch(ref):
            return None, "an item reference that is not a SHA-256"
        if ref in self._blob_cache:
            return self._blob_cache[ref]
        try:
            data = read_bounded(self.folder / "blobs" / ref[:2] / f"{ref}.json")
            if hashlib.sha256(data).hexdigest() != ref:
                raise ValueError("its bytes are not those its name hashes (edited)")
            got: tuple[Any, str | None] = (json.loads(data), None)
        except (OSError, ValueError, RecursionError) as exc:
            why = f"blob {ref[:12]}…: {_why(exc)}"
            got = ({"cto_harness_unreadable": why}, why)
        if len(self._blob_cache) > 512:  # an item is mostly read once; a few are resent
            self._blob_cache.clear()
        self._blob_cache[ref] = got
        return got

    def __iter__(self) -> Iterator[Loaded]:
        for entry in self.entries():
            yield self.load(entry)
