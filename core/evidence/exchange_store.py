"""Writing a run's model exchanges into `backend/exchanges/` (the layout and its reader are
in core/evidence/exchanges.py): each request's lists and long strings as content-addressed
blobs, redacted before they are hashed, the folder bounded per run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import BadInput
from core.evidence.exchanges import FORMAT, MAX_CHAIN

MAX_BYTES_VAR = "CTO_HARNESS_EXCHANGES_MAX_BYTES"
DEFAULT_MAX_BYTES = 512 << 20
INLINE_STRING = 2048
"""A top-level request string longer than this (an agent's instructions, resent each turn)
is stored as a blob."""
RAW_LIMIT = 256 * 1024
"""Of a body that is not JSON, this much text is kept (redacted), with the reason."""
RECENT_LISTS = 64


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

