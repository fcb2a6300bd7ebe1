"""Parent artifacts in an S3 datastore: probed, then downloaded in parallel into the disk
cache (devd/common/blobcache.py), checked against their content address on the way in.

Transfers use Metaflow's ``S3Client`` (its credentials, role, endpoint and client
parameters) with devd's own timeouts and a bounded retry count: an unreachable endpoint,
a missing credential or object, a timeout or a server that goes away mid-download is one
line naming the pathspec and the store, within seconds, never a hang. Progress and
cancellation come from blobcache's ``watch()`` around the work (the daemon's spin sets them).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, Protocol

from .blobcache import (
    CHUNK,
    BlobFile,
    Cancelled,
    Watch,
    cached,
    cached_path,
    checked_cache_dir,
    current_watch,
    env_float,
    store_id,
    trim_cache,
)
from .errors import DevdError


def timeout_seconds() -> float:
    """How long a transfer may go without a byte arriving (``DEVD_S3_TIMEOUT``, 30 s)."""
    return max(1.0, env_float("DEVD_S3_TIMEOUT", 30.0))


_clients: dict[tuple[int, float], Any] = {}
_clients_lock = threading.Lock()


def _client_params() -> dict[str, Any]:
    from botocore.config import Config
    from metaflow.metaflow_config import DATATOOLS_CLIENT_PARAMS

    params = dict(DATATOOLS_CLIENT_PARAMS or {})
    ours = Config(connect_timeout=min(10.0, timeout_seconds()), read_timeout=timeout_seconds(),
                  retries={"max_attempts": 2, "mode": "standard"})
    base = params.get("config")
    if isinstance(base, dict):
        base = Config(**base)
    params["config"] = base.merge(ours) if base is not None else ours
    return params


_metaflow_clients: dict[tuple[int, float], Any] = {}


def metaflow_s3_client() -> Any:
    """Metaflow's ``S3Client`` (credentials, role, endpoint and client parameters as
    Metaflow is configured) with devd's timeouts and retry bound; it keeps them when
    Metaflow resets it after an error. One per process: making a boto3 client costs
    tens of milliseconds, and a join may have hundreds of parents."""
    from metaflow.plugins.datatools.s3.s3 import S3Client

    bound_metaflow_retries()
    key = (os.getpid(), timeout_seconds())
    with _clients_lock:
        client = _metaflow_clients.get(key)
        if client is None:
            client = _metaflow_clients[key] = S3Client(s3_client_params=_client_params())
    return client


def s3_client() -> Any:
    """The boto3 client of ``metaflow_s3_client()``, one per process and timeout."""
    key = (os.getpid(), timeout_seconds())  # connections are not shared across a fork
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from metaflow.plugins.datatools.s3.s3 import S3Client

            bound_metaflow_retries()
            client = S3Client(s3_client_params=_client_params()).client
            _clients[key] = client
    return client


_bounded: list[bool] = []


def bound_metaflow_retries() -> None:
    """Metaflow's S3 layer retries a failed read up to 21 times with backoff capped at six
    minutes (a dead endpoint looks like a hang). In the process that holds warm parents
    devd bounds that to ``DEVD_S3_RETRIES`` (2) unless METAFLOW_S3_RETRY_COUNT is set."""
    if _bounded or "METAFLOW_S3_RETRY_COUNT" in os.environ:
        return
    _bounded.append(True)
    retries = max(0, int(env_float("DEVD_S3_RETRIES", 2)))
    try:
        from metaflow.plugins.datatools.s3 import s3, s3util

        s3.S3_RETRY_COUNT = s3.S3_TRANSIENT_RETRY_COUNT = retries
        s3util.S3_RETRY_COUNT = retries
    except ImportError:  # another Metaflow layout: its own retries apply
        pass


def endpoint() -> str:
    from metaflow.metaflow_config import S3_ENDPOINT_URL

    return S3_ENDPOINT_URL or "AWS S3"


def store_name(ds_type: str, ds_root: str) -> str:
    """How an error names a store: its root, and the endpoint for S3."""
    return f"{ds_root} at {endpoint()}" if ds_type == "s3" else ds_root


def explain(exc: BaseException) -> str:
    """One line for an S3 failure, without botocore's traceback."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 comes with Metaflow
        bx = None
    timeout = f"{timeout_seconds():g} s"
    if isinstance(exc, Cancelled):
        return str(exc)
    if bx is not None:
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return ("no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/"
                    "AWS_SECRET_ACCESS_KEY, or run `aws sso login`)")
        if isinstance(exc, bx.ConnectTimeoutError):
            return f"timed out connecting to {endpoint()} after {timeout} (DEVD_S3_TIMEOUT)"
        if isinstance(exc, bx.ReadTimeoutError):
            return f"no data from {endpoint()} for {timeout} (DEVD_S3_TIMEOUT)"
        if isinstance(exc, bx.EndpointConnectionError):
            return (f"cannot reach {endpoint()} (check METAFLOW_S3_ENDPOINT_URL, "
                    "the network or a VPN)")
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("NoSuchKey", "404", "NotFound") or status == 404:
                return "the object is missing from the store (deleted, or another store)"
            if code == "NoSuchBucket":
                return "the bucket does not exist (check METAFLOW_DATASTORE_SYSROOT_S3)"
            if code in ("AccessDenied", "403", "InvalidAccessKeyId",
                        "SignatureDoesNotMatch", "ExpiredToken") or status == 403:
                return (f"access denied ({code or status}): check the AWS credentials and "
                        "their permissions on the bucket")
            return f"S3 answered {code or status}: {error.get('Message', '')}".strip()
        if isinstance(exc, bx.ResponseStreamingError | bx.ConnectionClosedError
                      | bx.IncompleteReadError):
            return f"the connection to {endpoint()} broke off mid-download"
        if isinstance(exc, bx.BotoCoreError):
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = str(exc).strip().splitlines()
    if isinstance(exc, OSError | ConnectionError) or "IncompleteRead" in type(exc).__name__:
        return f"the connection to {endpoint()} broke off mid-download ({type(exc).__name__})"
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


def _bucket_and_prefix(ds_root: str) -> tuple[str, str]:
    rest = ds_root.split("://", 1)[-1]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix.strip("/")


class _Progress:
    """Adds up bytes from several transfer threads; tells the watch at most 5 times/s."""

    def __init__(self, watch_: Watch, what: str, total: int) -> None:
        self.watch = watch_
        self.what = what
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.last = 0.0
        self.started = time.monotonic()

    def add(self, count: int, final: bool = False) -> None:
        with self.lock:  # also keeps the reports in order
            self.done += count
            now = time.monotonic()
            if self.watch.on_progress is None or (not final and now - self.last < 0.2):
                return
            self.last = now
            done, total = self.done, max(self.total, self.done)
            mb = 1 << 20
            self.watch.on_progress(done, total, f"downloading {self.what}: "
                                                f"{done / mb:.0f}/{total / mb:.0f} MB")


def fetch_s3(ds_root: str, flow_name: str, keys: list[str], pathspec: str,
             sizes: dict[str, int] | None = None,
             owners: dict[str, str] | None = None) -> dict[str, BlobFile]:
    """The blobs ``keys`` of ``flow_name`` in ``ds_root`` on local disk, downloading the
    ones not cached yet in parallel. A DevdError names the store and the task the blob
    belongs to (``owners``: key to pathspec; else ``pathspec``)."""
    found: dict[str, BlobFile] = {}
    missing = []
    root = checked_cache_dir()
    for key in dict.fromkeys(keys):
        hit = cached(ds_root, flow_name, key, (sizes or {}).get(key, 0), root)
        if hit is not None:
            found[key] = hit
        else:
            missing.append(key)
    if not missing:
        return found
    watch_ = current_watch()
    store = store_name("s3", ds_root)
    if watch_.cancelled():
        raise Cancelled(f"cancelled before downloading the parents of {pathspec}")
    bucket, prefix = _bucket_and_prefix(ds_root)
    total = sum((sizes or {}).get(k, 0) for k in missing)
    progress = _Progress(watch_, f"{len(missing)} parent blob(s) of {pathspec}", total)
    folder = os.path.join(root, store_id(ds_root), flow_name)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        client = s3_client()
    except Exception as exc:  # noqa: BLE001 - boto3's many ways to fail (credentials, config): one line
        raise DevdError(f"cannot read parent task {pathspec} from {store}: {explain(exc)}") \
            from None
    stop = threading.Event()

    def one(key: str) -> BlobFile:
        try:
            return transfer(key)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - botocore, socket, zlib, disk: one line naming the task
            owner = (owners or {}).get(key, pathspec)
            why = str(exc) if isinstance(exc, DevdError) else explain(exc)
            raise DevdError(f"cannot read parent task {owner} from {store}: {why}") from None

    def transfer(key: str) -> BlobFile:
        object_key = "/".join(p for p in (prefix, flow_name, "data", key[:2], key) if p)
        response = client.get_object(Bucket=bucket, Key=object_key)
        length = int(response.get("ContentLength") or 0)
        with progress.lock:  # the stored (compressed) size replaces the artifact's estimate
            progress.total += length - (sizes or {}).get(key, 0)
        meta_text = (response.get("Metadata") or {}).get("metaflow-user-attributes")
        meta = json.loads(meta_text) if meta_text else None
        raw = bool(meta and meta.get("cas_raw", False))
        if meta and not raw and meta.get("cas_version", 1) != 1:
            raise DevdError(f"blob {key} has encoding version {meta.get('cas_version')}, "
                            "which this Metaflow cannot read; update Metaflow")
        # Kept decompressed (as Metaflow's client cache does): a restarted daemon then only
        # reads and unpickles; decompressing overlaps the transfer.
        # Checked against its key as it is written (sha1 of the decompressed bytes, what
        # Metaflow's key is): a blob in this private cache is the artifact's recorded content.
        final = cached_path(root, ds_root, flow_name, key)
        inflate = None if raw else _Inflater()
        os.makedirs(os.path.dirname(final), mode=0o700, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        body = response["Body"]
        try:
            with os.fdopen(handle, "wb") as file:
                out = _Hashing(file)
                for chunk in body.iter_chunks(CHUNK):
                    if stop.is_set() or watch_.cancelled():
                        raise Cancelled(f"cancelled while downloading the parents of "
                                        f"{pathspec} from {store}")
                    if inflate is None:
                        out.write(chunk)
                    else:
                        inflate.feed(chunk, out)
                    progress.add(len(chunk))
                if inflate is not None:
                    inflate.finish(out, key)
            if out.digest.hexdigest() != key:
                raise DevdError(f"blob {key} as stored does not match its content address "
                                f"(sha1 {out.digest.hexdigest()}): the store's copy is damaged")
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):  # already failing: the first error is the one
                body.close()  # drop the connection: the server stops sending
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return BlobFile(final, True)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(8, len(missing)),
                            thread_name_prefix="devd-s3") as pool:
        futures = {key: pool.submit(one, key) for key in missing}
        try:
            for key, future in futures.items():
                found[key] = future.result()
        except BaseException:
            stop.set()
            for other in futures.values():
                other.cancel()
            raise
    if time.monotonic() - started > 0 or progress.done:
        progress.add(0, final=True)
    trim_cache(keep={b.path for b in found.values()}, root=root)
    return found


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Hashing:
    """A file that hashes what is written to it (sha1, as Metaflow keys blobs)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.digest = hashlib.sha1()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.out.write(data)


class _Inflater:
    """Metaflow's gzip framing undone as the bytes arrive, a few MB of output at a time
    (bounded memory); several gzip members in a row are read as GzipFile reads them."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(wbits=31)

    def feed(self, data: bytes, out: _Sink) -> None:
        while data:
            out.write(self._inflate.decompress(data, 4 * CHUNK))
            data = self._inflate.unconsumed_tail
            if self._inflate.eof:
                data = self._inflate.unused_data + data
                if not data:
                    return
                self._inflate = zlib.decompressobj(wbits=31)

    def finish(self, out: _Sink, key: str) -> None:
        out.write(self._inflate.flush())
        if not self._inflate.eof:
            raise DevdError(f"blob {key} ended before its gzip stream did")


_probed: dict[tuple[str, str], float] = {}


def probe(ds_type: str, ds_root: str, what: str) -> None:
    """Fail fast, in one line, when a remote store cannot be read at all (no credentials,
    endpoint down, no bucket), before Metaflow's own client retries for minutes. A store
    that answered is not probed again for a minute."""
    if ds_type != "s3":
        return
    now = time.monotonic()
    key = (ds_type, ds_root)
    if now - _probed.get(key, -1e9) < 60:
        return
    bucket, prefix = _bucket_and_prefix(ds_root)
    try:
        s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - botocore's errors, unreachable endpoints: told apart by explain
        if not _denied(exc):  # credentials that may read objects but not list them: go on
            raise DevdError(f"cannot read {what} from {store_name(ds_type, ds_root)}: "
                            f"{explain(exc)}") from None
    _probed[key] = now


def _denied(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    return str(response.get("Error", {}).get("Code", "")) == "AccessDenied"
