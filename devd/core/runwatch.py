"""Has a new run been recorded in Metaflow's metadata service? One cheap request says.

Resolving a spin's parents through Metaflow's Client costs ~18 service requests. A plan
only changes when the flow's newest run changes (a new run, or the newest one still
going), so devd asks the service one question per spin, at most once per
``DEVD_SERVICE_RUNS_TTL`` seconds (default 1): ``GET /flows/F/runs?_limit=1`` with the
run's status, answered from one row. A run can only hold a step's parents once at least
its start task ran, which takes a fresh Python process importing Metaflow: longer than
the TTL, so the next spin after a new run still sees it. A run started from this project
(Metaflow writes ``.metaflow/<Flow>/latest_run``) is seen at once, without asking.

The question goes out with Metaflow's own URL and headers (``METAFLOW_SERVICE_URL``,
``METAFLOW_SERVICE_HEADERS``, ``METAFLOW_SERVICE_AUTH_KEY`` as ``x-api-key``), with
short timeouts and no retry loop: an outage is one line naming the service in seconds.
"""

from __future__ import annotations

import email.utils
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ..common.errors import DevdError

# A run whose last heartbeat is older than this has stopped (Metaflow beats every 10 s).
QUIET_S = 30.0
_lock = threading.Lock()
_checked: dict[tuple[str, str, str], tuple[float, Any, tuple[Any, ...] | None]] = {}


class ServiceUnreachable(DevdError):
    """The metadata service did not answer devd's question (down, wrong URL, refused)."""

    def __init__(self, message: str, url: str = "", why: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.why = why or message


@dataclass(frozen=True)
class NewestRun:
    run_id: str
    created: int  # ts_epoch, ms
    done: bool  # completed, failed, or silent (no heartbeat for QUIET_S)


def service_url() -> str:
    from metaflow.metaflow_config import SERVICE_URL

    return str(SERVICE_URL or "")


def _headers() -> dict[str, str]:
    from metaflow.metaflow_config import SERVICE_HEADERS

    return {str(k): str(v) for k, v in dict(SERVICE_HEADERS or {}).items()}


def _timeout() -> float:
    try:
        return max(0.5, float(os.environ.get("DEVD_SERVICE_TIMEOUT", "5")))
    except ValueError:
        return 5.0


def ttl() -> float:
    try:
        return max(0.0, float(os.environ.get("DEVD_SERVICE_RUNS_TTL", "1")))
    except ValueError:
        return 1.0


def unreachable(url: str, why: str) -> ServiceUnreachable:
    return ServiceUnreachable(
        f"cannot reach Metaflow's metadata service at {url}: {why} (check "
        "METAFLOW_SERVICE_URL, METAFLOW_SERVICE_AUTH_KEY/METAFLOW_SERVICE_HEADERS, the "
        "network or a VPN)", url, why)


def _get(url: str, path: str) -> tuple[Any, float]:
    """One GET; its JSON and the server's clock (its Date header, else ours)."""
    request = urllib.request.Request(urllib.parse.urljoin(url.rstrip("/") + "/", path),
                                     headers={**_headers(), "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_timeout()) as reply:
            body = reply.read()
            date = reply.headers.get("Date")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise unreachable(url, f"it refused devd's credentials (HTTP {exc.code})") \
                from None
        if exc.code == 404:
            raise unreachable(url, "HTTP 404: no metadata service at that URL") from None
        raise unreachable(url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        text = f"no answer in {_timeout():g} s" if "timed out" in str(reason) \
            else str(reason).strip() or type(exc).__name__
        raise unreachable(url, text) from None
    try:
        data = json.loads(body)
    except ValueError:
        raise unreachable(url, "its answer is not JSON: not a Metaflow metadata service") \
            from None
    now = time.time()
    if date:
        try:
            now = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return data, now


def newest_run(flow_name: str) -> NewestRun | None:
    """The flow's newest run as the service records it (None: no run yet).

    ``_limit`` and the status filter are the service's paginated listing (one row, newest
    first, with its derived status); an older service ignores them and lists every run,
    and the newest is picked here."""
    url = service_url()
    if not url:
        raise ServiceUnreachable("METAFLOW_DEFAULT_METADATA is 'service' but "
                                 "METAFLOW_SERVICE_URL is not set: set it to your team's "
                                 "metadata service")
    path = (f"flows/{urllib.parse.quote(flow_name)}/runs?_limit=1"
            "&status:eq=running,completed,failed")
    data, now = _get(url, path)
    if isinstance(data, dict):  # a 200 with an error body (e.g. the flow is unknown)
        data = data.get("data") if isinstance(data.get("data"), list) else []
    rows = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
    if not rows:
        return None
    row = max(rows, key=lambda r: (int(r.get("ts_epoch") or 0), str(r.get("run_number"))))
    status = row.get("status")
    beat = row.get("last_heartbeat_ts")
    silent = beat is None or now - float(beat) > QUIET_S
    done = status in ("completed", "failed") or silent
    return NewestRun(str(row.get("run_number")), int(row.get("ts_epoch") or 0), done)


def _local_stamp(flow_name: str, cwd: str) -> Any:
    """``.metaflow/<Flow>/latest_run`` in the project: Metaflow writes it for each run
    started there, whatever the metadata provider (a free, immediate signal)."""
    try:
        st = os.stat(os.path.join(cwd, ".metaflow", flow_name, "latest_run"))
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def service_fingerprint(flow_name: str, cwd: str | None = None) -> tuple[Any, ...] | None:
    """What changes when a new run is recorded; None while the newest run is still going
    (its tasks appear as it runs: look again on every spin until it ends).

    Asked at most once per ``ttl()`` seconds per flow; raises ``ServiceUnreachable``."""
    cwd = cwd or os.getcwd()
    key = (service_url(), flow_name, cwd)
    stamp = _local_stamp(flow_name, cwd)
    now = time.monotonic()
    with _lock:
        last = _checked.get(key)
    if last is not None and last[2] is not None and last[1] == stamp \
            and now - last[0] < ttl():
        return last[2]
    newest = newest_run(flow_name)
    fingerprint: tuple[Any, ...] | None
    if newest is None:
        fingerprint = ("service", "none")
    elif newest.done:
        fingerprint = ("service", newest.run_id, newest.created)
    else:
        fingerprint = None
    with _lock:
        _checked[key] = (now, stamp, fingerprint)
    return fingerprint


def forget() -> None:
    """Ask again on the next spin (a run devd itself just recorded, say)."""
    with _lock:
        _checked.clear()


def bound_metaflow_retries() -> None:
    """Metaflow's Client retries a failed service request 5 times, sleeping 1+2+4+8 s:
    devd's own lookups retry twice (1 s) unless METAFLOW_SERVICE_RETRY_COUNT is set."""
    if "METAFLOW_SERVICE_RETRY_COUNT" in os.environ:
        return
    try:
        retries = max(1, int(os.environ.get("DEVD_SERVICE_RETRIES", "2")))
    except ValueError:
        retries = 2
    from metaflow.plugins.metadata_providers import service

    service.SERVICE_RETRY_COUNT = retries
