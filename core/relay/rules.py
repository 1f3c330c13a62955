"""What the relay lets through: the routes it forwards, the shape of a body it accepts, and
how much it holds at once.

Every rule here judges bytes a hostile Case chose, before anything reaches the upstream:

- **Routes** are an allowlist matched on the decoded, normalised path (percent-escapes,
  backslashes, `//`, `.` and `..` resolved first), and the upstream URL is built from the
  matched route, never from the path the Case sent: no spelling of `/v1/../metrics` can
  reach a server's routes beside `/v1`. The query string is never forwarded.
- **Bodies** are JSON objects parsed strictly: duplicate keys refused at any depth (which
  `"model"` an upstream honours is its parser's choice, not ours), NaN/Infinity refused,
  and nesting and element counts bounded by a cheap scan *before* the full parse (a 60 MiB
  body of `[],[],…` costs the parser ~25× its size).
- **Load**: a cap on requests in flight and on body bytes held at once across requests.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from core.errors import HarnessError

MAX_BODY = 64 << 20
"""A request body beyond this is refused (413): far above any chat request, even with
images inline, and far below what would starve the harness of memory."""
MAX_BUFFERED = 160 << 20
"""Request-body bytes held at once across all requests; past it a request is refused (503)
rather than read. Two bodies at MAX_BODY fit; 24 of them never do."""
MAX_IN_FLIGHT = 32
"""Requests handled at once; past it a request is refused (429) before its body is read.
An agent runs a handful at a time; parallel tool calls a few dozen at most."""
CONNECTION_LIMIT = 256
"""uvicorn's own backstop on connections plus tasks (its bare 503, unrecorded): well above
MAX_IN_FLIGHT, so the recorded 429 is what a Case meets first."""
MAX_DEPTH = 64
MAX_CONTAINERS = 200_000
MAX_SEPARATORS = 2_000_000
"""Bounds of a body's shape, checked before the parse. A long agent conversation with tools
has a few thousand objects; these are two orders of magnitude above that, and bound what
the parse can allocate to a small multiple of the body."""

NAME_CHARS = 256
"""A model name or path the Case sent is kept to this many characters in a record or a
refusal: a 60 MiB `model` must not become a 60 MiB ledger line."""


def clip(text: str, limit: int = NAME_CHARS) -> str:
    """`text` cut to `limit` characters, with a mark when cut (redact before cutting)."""
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class Route:
    """One forwarded endpoint: its method, its path under `/v1` (and upstream's base)."""

    method: str
    path: str
    body: bool
    """Whether it takes a body, which must then be a JSON object naming the model."""


ROUTES = {
    route.path: route for route in (
        Route("POST", "chat/completions", body=True),   # aider, mini (litellm), Qwen Code
        Route("POST", "completions", body=True),
        Route("POST", "responses", body=True),          # Codex CLI
        Route("POST", "embeddings", body=True),
        Route("GET", "models", body=False),
    )
}
MODEL_ROUTE = "models/"
"""`GET /v1/models/{id}`: allowed for the admitted model's id only (see `match_route`)."""
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}")


@dataclass(frozen=True)
class Matched:
    route: Route
    upstream_path: str
    """The path to append to the upstream base: the route's own, never the Case's."""
    path_model: str | None = None
    """The model id a `models/{id}` path names."""


@dataclass(frozen=True)
class Unmatched:
    status: int
    reason: str


def normalise_path(raw: bytes) -> str | None:
    """The path as a server would resolve it: percent-decoded once, backslashes taken as
    slashes, `//`, `.` and `..` collapsed. None for a path no route can be (not ASCII on
    the wire, bad UTF-8 escapes, control characters, or a `%` left after decoding — a
    double-encoded path is never decoded twice)."""
    try:
        text = unquote(raw.decode("ascii"), errors="strict")
    except UnicodeDecodeError:
        return None
    if "%" in text or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return None
    text = re.sub(r"/+", "/", text.replace("\\", "/"))
    return posixpath.normpath(text) if text.startswith("/") else None


def match_route(method: str, raw_path: bytes) -> Matched | Unmatched:
    path = normalise_path(raw_path)
    rest = path.removeprefix("/v1/") if path and path.startswith("/v1/") else None
    if rest is None:
        return Unmatched(404, "the relay forwards only the OpenAI-compatible routes under /v1")
    route = ROUTES.get(rest)
    path_model = None
    if route is None and rest.startswith(MODEL_ROUTE):
        path_model = rest.removeprefix(MODEL_ROUTE)
        if not _MODEL_ID.fullmatch(path_model):
            return Unmatched(404, "not a model id the relay forwards")
        route = ROUTES["models"]
    if route is None:
        return Unmatched(404, f"/v1/{clip(rest)} is not a route the relay forwards")
    if method != route.method:
        return Unmatched(405, f"{clip(method, 16)} /v1/{clip(rest)} is not relayed; "
                              f"it takes {route.method}")
    return Matched(route, rest, path_model)


# -- strict JSON ----------------------------------------------------------------------
class BodyError(ValueError, HarnessError):
    """A body the relay will not forward; the message says why, never quoting it."""


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


def _bound_shape(body: bytes) -> None:
    """Count containers and separators outside strings, and the nesting depth, in C-speed
    passes (strings replaced by `""`, then `bytes.count`); only when those are within
    bounds is the depth walked, over at most MAX_CONTAINERS brackets."""
    skeleton = _STRING.sub(b'""', body)
    containers = skeleton.count(b"[") + skeleton.count(b"{")
    if containers > MAX_CONTAINERS:
        raise BodyError(f"the body has more than {MAX_CONTAINERS:,} arrays and objects")
    if skeleton.count(b",") + skeleton.count(b":") > MAX_SEPARATORS:
        raise BodyError(f"the body has more than {MAX_SEPARATORS:,} elements")
    depth = 0
    for match in _BRACKET.finditer(skeleton):
        depth += 1 if match.group() in b"[{" else -1
        if depth > MAX_DEPTH:
            raise BodyError(f"the body nests deeper than {MAX_DEPTH} levels")


def _no_constant(name: str) -> Any:
    raise BodyError(f"the body holds {name}, which is not JSON")


@dataclass(frozen=True)
class Parsed:
    """A body as the relay judged it."""

    data: dict[str, Any] | None
    """The object, or None when the body is refused (`problem` says why)."""
    models: list[Any]
    """Every top-level `model` value, in order, duplicates included: a body refused for
    naming `model` twice still tells which models it named."""
    problem: str | None = None


def parse_body(body: bytes) -> Parsed:
    """A JSON object, parsed strictly and only after its shape is bounded."""
    try:
        _bound_shape(body)
    except BodyError as exc:
        return Parsed(None, [], str(exc))
    repeated = False
    outermost: list[tuple[str, Any]] = []

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Called innermost first, so the last call is the outermost object's.
        nonlocal repeated, outermost
        obj = dict(pairs)
        repeated = repeated or len(obj) != len(pairs)
        outermost = pairs
        return obj

    try:
        data = json.loads(body, object_pairs_hook=unique, parse_constant=_no_constant)
    except BodyError as exc:
        return Parsed(None, [], str(exc))
    except (ValueError, RecursionError) as exc:
        return Parsed(None, [], f"the body is not JSON ({type(exc).__name__})")
    if not isinstance(data, dict):
        return Parsed(None, [], "the body is not a JSON object")
    models = [value for key, value in outermost if key == "model"]
    if repeated:
        return Parsed(None, models, "the body repeats a key within one object (which one "
                                    "an upstream honours is its parser's choice)")
    return Parsed(data, models)


# -- load -----------------------------------------------------------------------------
class Load:
    """Requests in flight and body bytes held, across one relay's requests (one event loop,
    so plain counters)."""

    def __init__(self, max_in_flight: int = MAX_IN_FLIGHT,
                 max_buffered: int = MAX_BUFFERED) -> None:
        self.max_in_flight = max_in_flight
        self.max_buffered = max_buffered
        self.in_flight = 0
        self.buffered = 0

    def enter(self) -> bool:
        if self.in_flight >= self.max_in_flight:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1

    def hold(self, size: int) -> bool:
        """Count `size` more bytes held, or False (nothing counted) when over the cap."""
        if self.buffered + size > self.max_buffered:
            return False
        self.buffered += size
        return True

    def release(self, size: int) -> None:
        self.buffered -= size
