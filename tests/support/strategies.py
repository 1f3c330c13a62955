"""Hypothesis strategies shared by the redactor's property and oracle tests: endpoint URLs in
every shape a user may write one (case, userinfo, port, path, query)."""

from __future__ import annotations

import string
from urllib.parse import quote

from hypothesis import strategies as st

LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8)
TOKEN = st.text(string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=16)


@st.composite
def urls(draw: st.DrawFn) -> str:
    host = ".".join(draw(st.lists(LABEL, min_size=1, max_size=3)))
    if draw(st.booleans()):
        host = host.upper() if draw(st.booleans()) else host.capitalize()
    userinfo = ""
    if draw(st.booleans()):
        userinfo = f"{draw(LABEL)}:{quote(draw(st.text(min_size=1, max_size=10)), safe='')}@"
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    path = draw(st.sampled_from(["", "/", "/v1", "/v1/"]))
    query = f"?{draw(LABEL)}={draw(TOKEN)}" if draw(st.booleans()) else ""
    scheme = draw(st.sampled_from(["http", "https"]))
    return f"{scheme}://{userinfo}{host}{'' if port is None else f':{port}'}{path}{query}"
