"""Every model exchange of a run, whole: `backend/exchanges/`, its writer and its reader.

The relay hands each forwarded request's body and its answer (a whole response, or a stream
already reassembled by `core.relay.recording`) to `ExchangeStore.write`; readers open the
folder with `ExchangeFolder`. The layout (format `cto-harness.exchange/1`):

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
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.evidence.rundir import NotRegularFile, open_regular

FORMAT = "cto-harness.exchange/1"
MAX_BYTES_VAR = "CTO_HARNESS_EXCHANGES_MAX_BYTES"
DEFAULT_MAX_BYTES = 512 << 20
INLINE_STRING = 2048
"""A top-level request string longer than this (an agent's instructions, resent each turn)
is stored as a blob."""
RAW_LIMIT = 256 * 1024
"""Of a body that is not JSON, this much text is kept (redacted), with the reason."""
READ_LIMIT = 256 << 20
"""The most a reader reads of one file: well above any exchange the relay can write (its
bodies are bounded at 64 MiB), far below what would exhaust a dashboard."""
INDEX_LINE_LIMIT = 64 * 1024
MAX_CHAIN = 64
"""An exchange's list refers to an earlier one's at most this many links deep."""
RECENT_LISTS = 64
_REF = re.compile(r"[0-9a-f]{64}")
_SEQ_FILE = re.compile(r"\d{6,}\.json")


def max_bytes_from_env(environ: dict[str, str] | None = None) -> int | None:
    """The per-run cap from CTO_HARNESS_EXCHANGES_MAX_BYTES (bytes; `0` keeps each
    exchange's metadata only; `off` records nothing — the relay bench's "before"); a bad
    value names the variable and what to write."""
    env = os.environ if environ is None else environ
    raw = env.get(MAX_BYTES_VAR, "").strip()
    if not raw:
        return DEFAULT_MAX_BYTES
    if raw.lower() == "off":
        return None
    if not raw.isdigit():
        raise BadInput(f"{MAX_BYTES_VAR}={raw[:40]!r} is not a number of bytes; write e.g. "
                       f"{DEFAULT_MAX_BYTES} (512 MiB), 0 to keep only each exchange's "
                       "metadata, or off to record none")
    return int(raw)


def canonical(value: Any) -> bytes:
    """The bytes a JSON value is stored (and hashed) as: keys sorted, compact, UTF-8, so
    one message resent by an agent in another key order is still stored once."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8", "surrogatepass")


def redact_value(value: Any, redact: Callable[[str], str]) -> Any:
    """`value` with the secret's forms masked: its JSON text is redacted whole (which also
    catches escaped spellings), and only when that breaks the JSON is each string
    redacted one by one."""
    text = canonical(value).decode("utf-8", "surrogatepass")
    masked = redact(text)
    if masked == text:
        return value
    try:
        return json.loads(masked)
    except ValueError:
        return _walk(value, redact)


def _walk(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_walk(v, redact) for v in value]
    if isinstance(value, dict):
        return {redact(k): _walk(v, redact) for k, v in value.items()}
    return value


def describe_item(value: Any) -> dict[str, Any]:
    """What a reader needs of an item without opening its blob: its role or type and the
    tool call it answers (chat `tool_call_id`, Responses `call_id`)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, name in (("role", "role"), ("type", "type"), ("tool_call_id", "call_id"),
                          ("call_id", "call_id")):
            got = value.get(key)
            if isinstance(got, str) and name not in out:
                out[name] = got[:200]
    return out


@dataclass
class Recorded:
    """One exchange as the relay hands it over (already reassembled, not yet redacted)."""

    seq: int
    started: str
    ended: str
    method: str
    route: str
    api: str
    status: int
    stream: bool
    model_asked: str | None
    model_answered: str | None
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    error: str | None
    request: bytes
    response: Any = None
    """The answer: a JSON value (whole or reassembled), or None when there was none."""
    response_raw: str | None = None
    """The answer's text when it was not JSON (redacted and cut on writing)."""
    problems: list[str] = field(default_factory=list)
    """What the reassembly could not read (a stream cut mid-event, an event not JSON)."""
    events: int = 0


class ExchangeStore:
    """Writes one run's exchanges (called from one thread: the relay's recorder)."""

    def __init__(self, folder: Path, redact: Callable[[str], str],
                 max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.folder = folder
        self._redact = redact
        self.max_bytes = max_bytes
        self.written = 0
        self.kept = 0
        self.cut = 0
        self._refs: dict[bytes, str] = {}
        """Digest of an item's raw canonical bytes -> its blob's name: an item resent on
        every turn is hashed again (cheap) but redacted and written once."""
        self._index: io.FileIO | None = None
        self._recent: list[tuple[int, str, tuple[str, ...], int]] = []
        """(seq, list name, its refs, chain depth) of recent exchanges' lists: a request
        whose list begins with one of them is stored as that base plus what follows."""

    def _open(self) -> None:
        for sub in ("e", "blobs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._index = (self.folder / "index.jsonl").open("ab", buffering=0)

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
            self._index = None

    def write(self, rec: Recorded) -> None:
        if self._index is None:
            self._open()
        blobs: dict[str, bytes] = {}
        request = self._request(rec.request, blobs)
        self._delta(rec.seq, request)
        response = self._response(rec)
        doc: dict[str, Any] = {
            "format": FORMAT, "seq": rec.seq, "started": rec.started, "ended": rec.ended,
            "method": rec.method, "route": rec.route, "api": rec.api, "status": rec.status,
            "stream": rec.stream, "model_asked": rec.model_asked,
            "model_answered": rec.model_answered, "latency_ms": rec.latency_ms,
            "prompt_tokens": rec.prompt_tokens, "completion_tokens": rec.completion_tokens,
            "error": rec.error, "events": rec.events, "request": request,
            "response": response, "cut": None,
        }
        body = canonical(doc)
        size = len(body) + sum(len(b) for b in blobs.values())
        if self.written + size > self.max_bytes:
            doc["request"] = doc["response"] = None
            doc["cut"] = (f"request and answer not kept: the run's exchanges reached "
                          f"{self.written:,} bytes of {self.max_bytes:,} "
                          f"({MAX_BYTES_VAR}); this one needed {size:,} more")
            blobs = {}
            body = canonical(doc)
            self.cut += 1
            self._recent = [r for r in self._recent if r[0] != rec.seq]  # no list to base on
        else:
            self.kept += 1
        for ref, data in blobs.items():
            self._put(self.folder / "blobs" / ref[:2] / f"{ref}.json", data)
        name = f"{rec.seq:06d}.json"
        self._put(self.folder / "e" / name, body)
        self.written += len(body) + sum(len(b) for b in blobs.values())
        line = {k: doc[k] for k in ("seq", "api", "route", "status", "stream", "model_asked",
                                    "model_answered", "latency_ms", "prompt_tokens",
                                    "completion_tokens", "error", "cut")}
        line.update(file=f"e/{name}", ts=rec.started, bytes=len(body))
        assert self._index is not None
        self._index.write(canonical(line) + b"\n")

    def _delta(self, seq: int, request: dict[str, Any]) -> None:
        """Each of the request's lists as `{"base": [seq, n], "more": [...]}` when an
        earlier exchange's list is its first n items: an agent resends its history each
        turn, so whole lists would grow the folder with the square of the turns (5,000
        turns: gigabytes of references). A full list every MAX_CHAIN links bounds how far
        a reader of one exchange must follow."""
        items = request.get("items")
        if not isinstance(items, dict):
            return
        for key, descs in list(items.items()):
            refs = tuple(d["ref"] for d in descs)
            best: tuple[int, int, int] | None = None
            for base_seq, base_key, base_refs, depth in self._recent:
                n = len(base_refs)
                if base_key == key and 0 < n <= len(refs) and depth < MAX_CHAIN and \
                        (best is None or n > best[1]) and refs[:n] == base_refs:
                    best = (base_seq, n, depth)
            depth = 0
            if best is not None:
                items[key] = {"base": [best[0], best[1]], "more": descs[best[1]:]}
                depth = best[2] + 1
            self._recent.append((seq, key, refs, depth))
        del self._recent[:-RECENT_LISTS]

    def _request(self, raw: bytes, blobs: dict[str, bytes]) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return self._raw(raw.decode("utf-8", "replace"),
                             f"the request body is not JSON ({type(exc).__name__})")
        if not isinstance(data, dict):
            return self._raw(raw.decode("utf-8", "replace"), "the request body is not a "
                             "JSON object")
        fields: dict[str, Any] = {}
        items: dict[str, list[dict[str, Any]]] = {}
        strings: dict[str, str] = {}
        for key, value in data.items():
            if isinstance(value, list):
                items[self._redact(key)] = [self._blob(v, blobs) for v in value]
            elif isinstance(value, str) and len(value) > INLINE_STRING:
                strings[self._redact(key)] = self._blob(value, blobs)["ref"]
            else:
                fields[self._redact(key)] = redact_value(value, self._redact)
        return {"fields": fields, "items": items, "strings": strings}

    def _blob(self, value: Any, blobs: dict[str, bytes]) -> dict[str, Any]:
        raw = canonical(value)
        key = hashlib.sha256(raw).digest()
        ref = self._refs.get(key)
        clean = None
        if ref is None:
            clean = redact_value(value, self._redact)
            data = canonical(clean)
            ref = hashlib.sha256(data).hexdigest()
            self._refs[key] = ref
            if not (self.folder / "blobs" / ref[:2] / f"{ref}.json").exists():
                blobs[ref] = data
        desc = describe_item(value if clean is None else clean)
        if clean is None and desc:
            desc = {k: self._redact(v) for k, v in desc.items()}
        return {"ref": ref, **desc}

    def _response(self, rec: Recorded) -> dict[str, Any] | None:
        if rec.response is not None:
            out: dict[str, Any] = {"body": redact_value(rec.response, self._redact)}
        elif rec.response_raw is not None:
            out = self._raw(rec.response_raw, "the answer is not JSON")
        else:
            return None
        if rec.problems:
            out["problems"] = [self._redact(p) for p in rec.problems]
        return out

    def _raw(self, text: str, problem: str) -> dict[str, Any]:
        clean = self._redact(text)
        cut = len(clean) > RAW_LIMIT
        return {"raw": clean[:RAW_LIMIT], "raw_cut": cut, "problem": problem}

    @staticmethod
    def _put(path: Path, data: bytes) -> None:
        """Whole or not at all (a reader following a live run never sees half a file); no
        fsync: the report's hashes, written later, are what vouch for the bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".x-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# -- reading ---------------------------------------------------------------------------
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
