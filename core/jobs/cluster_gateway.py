"""The driver's look at the gateway before a cluster job schedules any trial (issue 20).

Why: every trial proves its own readiness on its node, so a gateway that refuses the job
(a wrong certificate pin, a token it never issued, one revoked or expired) used to show as
one `blocked` trial after another, each after its node had started a run. The driver asks
once, before the job folder is made or Ray is connected: the same pinned TLS and bearer
token a trial's relay uses, on the route readiness already probes (`GET /v1/models`, which
the gateway admits or refuses by token before it reaches the endpoint), so a job the
gateway would refuse is one `gateway:` line and exit 3. Each trial still checks again (a
token revoked mid-job blocks the trials after it).

The driver reads the token file itself (it must exist at the same path here as on the
workers): the token goes over the driver's own HTTPS connection, never through Ray.
"""

from __future__ import annotations

from core.jobs.cluster import ClusterBlocked
from core.run.readiness import check_endpoint_config, check_model_served, probe_endpoint
from core.secrets.redact import Redactor
from core.settings import resolve

PRECHECK_TIMEOUT_S = 10.0
"""One request's bound: a gateway that does not answer in this is named, not waited on."""


class GatewayBlocked(ClusterBlocked):
    """The gateway refuses (or cannot be reached by) this job: one `gateway:` line, exit 3,
    no trial started."""


def precheck_gateway(url: str, profile: str) -> None:
    """GatewayBlocked (one line naming the variable to fix) unless the gateway at `url`,
    pinned to CTO_HARNESS_GATEWAY_FINGERPRINT, admits the token in
    CTO_HARNESS_GATEWAY_TOKEN_FILE and serves the profile's model."""
    resolved = resolve(profile, gateway_url=url)
    config = check_endpoint_config(resolved)
    if config.state != "ok":  # its detail already starts with `gateway:`
        raise GatewayBlocked(config.detail)
    redact = Redactor(resolved.secrets()).redact
    reached, ids = probe_endpoint(resolved, PRECHECK_TIMEOUT_S, redact)
    if reached.state != "ok" or ids is None:
        raise GatewayBlocked(f"gateway: {url}: {reached.detail}")
    served = check_model_served(resolved.model, ids, redact)
    if served.state != "ok":
        raise GatewayBlocked(f"gateway: {url}: {served.detail}")
