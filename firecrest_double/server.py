"""The double's HTTP server: FirecREST v2 routes over a :class:`Scheduler`.

Every request goes through one dispatcher that: counts it (per route, per job),
applies injected faults, matches it against the OpenAPI document (unknown path →
404, undocumented method → 405), validates parameters and body (violation → 422 and
an entry in :attr:`FirecrestDouble.violations`), checks the bearer token
(:mod:`firecrest_double.auth`), runs the route's handler, validates the answer it is
about to send (violation → recorded, logged and replaced by a 500 naming it) and
stamps ``f7t-appversion: 2.5.6`` on it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import stat as stat_mod
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .auth import AuthError, Identity, TokenVerifier
from .faults import Faults
from .idp import IdentityProvider
from .scheduler import AccountingError, JobNotFound, JobSubmission, Scheduler, SchedulerError
from .simulated import SimulatedScheduler
from .spec import OpenAPISpec, Operation, Violation, load_spec

log = logging.getLogger("firecrest_double")
T = TypeVar("T")
APP_VERSION = "2.5.6"
DEFAULT_MAX_OPS_FILE_SIZE = 5 * 1024 * 1024


@dataclass
class RequestRecord:
    """One request the double answered (or dropped)."""

    method: str
    path: str
    route: str | None
    status: int | None
    job_id: str | None
    user: str | None
    started: float
    duration: float
    fault: str | None = None


@dataclass(frozen=True)
class FileSystemConfig:
    """A file system of the simulated cluster, mapped onto a local directory."""

    path: str
    data_type: str = "users"
    default_work_dir: bool = False


class _Reply(Exception):
    """Raised by handlers to answer with an error status and message."""

    def __init__(self, status: int, message: str, error_type: str = "error") -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


Handler = Callable[["_Ctx"], Awaitable[tuple[int, Any]]]


@dataclass
class _Ctx:
    request: web.Request
    op: Operation
    params: dict[str, Any]
    body: Any
    identity: Identity | None
    form: Any = None


class FirecrestDouble:
    """A FirecREST v2 server for tests, with its own identity provider.

    Use ``async with FirecrestDouble(...) as fc:`` to serve in the running loop, or
    ``fc = FirecrestDouble(...).start_in_thread()`` (and ``fc.stop_thread()``, or a
    plain ``with``) to serve from a thread with its own loop. ``fc.url`` is the API
    root for ``firecrest.v2.AsyncFirecrest``; ``fc.idp`` the identity provider.
    """

    def __init__(
        self,
        scheduler: Scheduler | Sequence[Scheduler] | None = None,
        *,
        idp: IdentityProvider | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        spec: OpenAPISpec | None = None,
        filesystems: Sequence[FileSystemConfig] | None = None,
        max_ops_file_size: int = DEFAULT_MAX_OPS_FILE_SIZE,
        keep_request_log: bool = True,
        jwks_url: str | None = None,
    ) -> None:
        if scheduler is None:
            scheds: list[Scheduler] = []
        elif isinstance(scheduler, (list, tuple)):
            scheds = list(scheduler)
        else:
            scheds = [scheduler]  # type: ignore[list-item]
        if not scheds:
            scheds = [SimulatedScheduler()]
        self.schedulers: dict[str, Scheduler] = {s.system_name: s for s in scheds}
        self.scheduler: Scheduler = scheds[0]
        self.idp = idp or IdentityProvider()
        self.host, self._port = host, port
        self.spec = spec or load_spec()
        self._fs_arg = list(filesystems) if filesystems else None
        self.filesystems: list[FileSystemConfig] = []
        self.max_ops_file_size = max_ops_file_size
        self.keep_request_log = keep_request_log
        #: Verify tokens against this JWKS (an external identity provider) instead of
        #: the own IdP's; the own IdP is then not served at all.
        self.jwks_url = jwks_url
        self.url = ""
        self.faults = Faults()
        #: Services /status/systems reports unhealthy: (system, serviceType) -> message,
        #: e.g. ``{("cluster", "scheduler"): "slurmctld not responding"}``.
        self.unhealthy: dict[tuple[str, str], str] = {}
        #: Spec violations (requests received and responses the double built).
        self.violations: list[Violation] = []
        #: Every request, in arrival order (when ``keep_request_log``).
        self.requests: list[RequestRecord] = []
        #: Requests per OpenAPI route key, e.g. ``"GET /compute/{system_name}/jobs/{job_id}"``.
        self.route_counts: collections.Counter[str] = collections.Counter()
        #: Requests per job id (submit, job info, metadata, cancel of that job).
        self.job_counts: collections.Counter[str] = collections.Counter()
        self._verifier: TokenVerifier | None = None
        self._runner: web.AppRunner | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._owns_idp = (idp is None or not idp.url) and jwks_url is None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[str, Handler] = {
            "GET /status/systems": self._systems,
            "GET /status/liveness/": self._liveness,
            "GET /status/{system_name}/userinfo": self._userinfo,
            "GET /status/{system_name}/partitions": self._partitions,
            "GET /status/{system_name}/reservations": self._reservations,
            "GET /status/{system_name}/nodes": self._nodes,
            "POST /compute/{system_name}/jobs": self._submit,
            "GET /compute/{system_name}/jobs": self._jobs,
            "GET /compute/{system_name}/jobs/{job_id}": self._job,
            "DELETE /compute/{system_name}/jobs/{job_id}": self._cancel,
            "GET /compute/{system_name}/jobs/{job_id}/metadata": self._metadata,
            "POST /filesystem/{system_name}/ops/upload": self._upload,
            "GET /filesystem/{system_name}/ops/view": self._view,
            "GET /filesystem/{system_name}/ops/tail": self._tail,
            "GET /filesystem/{system_name}/ops/ls": self._ls,
        }

    # -- counters --------------------------------------------------------------------
    def count(self, route: str | None = None, job_id: str | None = None) -> int:
        """Requests to ``route`` (all routes if None) and/or naming ``job_id``."""
        if job_id is not None and route is None:
            return self.job_counts[job_id]
        if job_id is None:
            return sum(self.route_counts.values()) if route is None else self.route_counts[route]
        return sum(1 for r in self.requests if r.route == route and r.job_id == job_id)

    def reset_counters(self) -> None:
        """Forget counted requests (e.g. after a benchmark's warm-up)."""
        self.route_counts.clear()
        self.job_counts.clear()
        self.requests.clear()

    def assert_no_violations(self) -> None:
        """Raise AssertionError listing every spec violation seen so far."""
        if self.violations:
            raise AssertionError("FirecREST double saw OpenAPI violations:\n" +
                                 "\n".join(f"  - {v}" for v in self.violations))

    # -- lifecycle in the current loop -----------------------------------------------
    async def start(self) -> FirecrestDouble:
        """Start the IdP (if it is ours), the schedulers and the HTTP server."""
        if self._owns_idp:
            await self.idp.start(self.host)
        self._verifier = TokenVerifier(self.jwks_url or self.idp.url + "/jwks")
        # As FirecREST: the JWKS is fetched once, at start-up, and never again.
        await self._verifier.load()
        if self._fs_arg is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="f7t-double-fs-")
            self.filesystems = [FileSystemConfig(self._tmp.name, "users", True)]
        else:
            self.filesystems = self._fs_arg
        for s in self.schedulers.values():
            await s.start()
        await self._serve(self._port)
        return self

    async def _serve(self, port: int) -> None:
        """Serve the API on ``port`` (0: any free port) and set :attr:`url`."""
        app = web.Application(client_max_size=self.max_ops_file_size * 2 + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{self.host}:{port}"

    async def close_port(self) -> None:
        """Stop serving the API, as a FirecREST that is down or restarting: new
        connections are refused and open ones are closed, while the schedulers (and
        their jobs) and the identity provider go on. :meth:`open_port` serves again."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def open_port(self) -> None:
        """Serve the API again, on the same port as before :meth:`close_port`."""
        if self._runner is None:
            await self._serve(int(self.url.rsplit(":", 1)[1]))

    async def reload_jwks(self) -> int:
        """Fetch the identity provider's JWKS again, as a FirecREST restart would (the
        real server never refetches on its own); returns how many keys it now knows."""
        assert self._verifier is not None, "start() the double first"
        await self._verifier.load()
        return len(self._verifier.keys)

    async def stop(self) -> None:
        """Stop serving, stop the schedulers (killing job processes) and the IdP."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for s in self.schedulers.values():
            await s.stop()
        if self._owns_idp:
            await self.idp.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> FirecrestDouble:  # noqa: PYI034
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- lifecycle in a thread -------------------------------------------------------
    def start_in_thread(self, timeout: float = 30.0) -> FirecrestDouble:
        """Serve from a daemon thread with its own event loop; returns when ready."""
        if self._thread is not None:
            raise RuntimeError("the double is already running in a thread")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as e:  # noqa: BLE001  (re-raised in the starting thread)
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="firecrest-double", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the FirecREST double did not start within {timeout}s")
        if failure:
            self._thread = None
            raise RuntimeError(f"the FirecREST double failed to start: {failure[0]!r}") \
                from failure[0]
        return self

    def stop_thread(self, timeout: float = 30.0) -> None:
        """Stop a double started with :meth:`start_in_thread` and join its thread."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the FirecREST double thread did not stop within {timeout}s")
        self._thread = None
        self._loop = None

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = 30.0) -> T:
        """Run ``await fn(*args)`` in the double's thread loop and return its result
        (e.g. ``fc.call(fc.scheduler.end_job, "3")``)."""
        if self._loop is None:
            raise RuntimeError("call() is for a double started with start_in_thread()")
        return asyncio.run_coroutine_threadsafe(fn(*args), self._loop).result(timeout)

    def __enter__(self) -> FirecrestDouble:  # noqa: PYI034
        return self.start_in_thread()

    def __exit__(self, *exc: object) -> None:
        self.stop_thread()

    # -- dispatch --------------------------------------------------------------------
    def _error(self, status: int, message: str, error_type: str = "error",
               user: str | None = None) -> tuple[int, dict[str, Any]]:
        return status, {"errorType": error_type, "message": message, "causedBy": None,
                        "data": None, "user": user}

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        path = request.path
        match = self.spec.match(request.method, path)
        op, raw_params = match if match else (None, {})
        route = op.route if op else None
        job_id = raw_params.get("job_id")
        record = RequestRecord(request.method, path, route, None, job_id, None, started, 0.0)
        self.route_counts[route or f"{request.method} <undocumented>"] += 1
        if job_id:
            self.job_counts[job_id] += 1
        if self.keep_request_log:
            self.requests.append(record)
        try:
            fault = self.faults.take(route or "")
            if fault is not None:
                record.fault = ("reset" if fault.reset else
                                f"status {fault.status}" if fault.status else f"delay {fault.delay}")
                if fault.delay and not fault.late:
                    await asyncio.sleep(fault.delay)
                if fault.reset:
                    # Drop the connection without an answer; aiohttp discards the
                    # placeholder response below since the transport is gone.
                    if request.transport is not None:
                        request.transport.abort()
                    return web.Response(status=499)
                if fault.status is not None:
                    return self._respond(op, record, *self._error(fault.status, fault.message))
            if op is None:
                status = 405 if self.spec.path_exists(path) else 404
                body = {"detail": "Method Not Allowed" if status == 405 else "Not Found"}
                return self._respond(None, record, status, body)
            status, body = await self._handle(request, op, raw_params, record)
            if fault is not None and fault.late:
                await asyncio.sleep(fault.delay)
            return self._respond(op, record, status, body)
        finally:
            record.duration = time.monotonic() - started

    async def _handle(self, request: web.Request, op: Operation, raw_params: dict[str, str],
                      record: RequestRecord) -> tuple[int, Any]:
        raw = b""
        form = None
        form_fields: set[str] | None = None
        ctype = request.headers.get("Content-Type", "")
        if request.body_exists:
            if ctype.lower().startswith("multipart/form-data"):
                try:
                    form = await request.post()
                except ValueError as e:  # body too large for aiohttp
                    return self._error(413, f"Request body too large: {e}")
                form_fields = set(form.keys())
            else:
                raw = await request.read()
        query = {k: v for k, v in request.query.items()}
        errors, params, body = self.spec.validate_request(
            op, raw_params, query, ctype, raw, form_fields)
        if errors:
            v = Violation("request", op.route, None, errors)
            self.violations.append(v)
            log.error("FirecREST double: request violates the OpenAPI document: %s", v)
            return self._error(422, "; ".join(errors), "validation")
        identity = None
        if op.secured:
            assert self._verifier is not None
            try:
                identity = await self._verifier.verify(request.headers.get("Authorization"))
            except AuthError as e:
                return self._error(e.status, e.message)
            record.user = identity.username
        handler = self._handlers.get(op.route)
        if handler is None:
            return self._error(501, f"{op.route} is not implemented by the FirecREST double",
                               user=identity.username if identity else None)
        try:
            return await handler(_Ctx(request, op, params, body, identity, form))
        except _Reply as r:
            return self._error(r.status, r.message, r.error_type,
                               identity.username if identity else None)

    def _respond(self, op: Operation | None, record: RequestRecord, status: int,
                 body: Any) -> web.Response:
        data = b"" if body is None else json.dumps(body).encode()
        ctype = None if body is None else "application/json"
        if op is not None:
            errors = self.spec.validate_response(op, status, ctype, data)
            if errors:
                v = Violation("response", op.route, status, errors)
                self.violations.append(v)
                log.error("FirecREST double BUG: response violates the OpenAPI document: %s", v)
                status = 500
                data = json.dumps(self._error(
                    500, f"FirecREST double bug: its response violates the OpenAPI "
                         f"document: {v}")[1]).encode()
                ctype = "application/json"
        record.status = status
        headers = {"f7t-appversion": APP_VERSION}
        if ctype:
            headers["Content-Type"] = ctype
        return web.Response(status=status, body=data or None, headers=headers)

    # -- helpers ---------------------------------------------------------------------
    def _sched(self, ctx: _Ctx) -> Scheduler:
        name = ctx.params["system_name"]
        sched = self.schedulers.get(name)
        if sched is None:
            raise _Reply(404, "System not found")
        return sched

    def _user(self, ctx: _Ctx) -> str:
        assert ctx.identity is not None
        return ctx.identity.username

    def _fs_path(self, ctx: _Ctx, key: str = "path") -> Path:
        raw = str(ctx.params[key])
        p = Path(os.path.normpath(raw))
        if not raw.startswith("/"):
            raise _Reply(400, f"'{raw}' is not an absolute path")
        for fs in self.filesystems:
            root = Path(fs.path)
            if p == root or root in p.parents:
                return p
        roots = ", ".join(f.path for f in self.filesystems)
        raise _Reply(400, f"'{raw}' is not under a configured file system ({roots})")

    # -- status ----------------------------------------------------------------------
    def system_description(self, name: str) -> dict[str, Any]:
        """The ``HPCCluster`` description of one system."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            "name": name,
            "ssh": {"host": "127.0.0.1", "port": 22, "maxClients": 100},
            "scheduler": {"type": "slurm", "version": "22.05.8", "connectionMode": "ssh",
                          "timeout": 10, "apiUrl": None, "apiVersion": None},
            "probing": {"intervalCheck": 120},
            "servicesHealth": [
                {"serviceType": "scheduler", "healthy": True, "latency": 0.01,
                 "message": None, "lastChecked": now},
                {"serviceType": "ssh", "healthy": True, "latency": 0.01,
                 "message": None, "lastChecked": now},
                {"serviceType": "filesystem", "healthy": True, "latency": 0.01,
                 "message": None, "lastChecked": now, "path": self.filesystems[0].path}
                if self.filesystems else
                {"serviceType": "filesystem", "healthy": True, "latency": 0.01,
                 "message": None, "lastChecked": now},
            ],
            "fileSystems": [{"path": f.path, "dataType": f.data_type,
                             "defaultWorkDir": f.default_work_dir} for f in self.filesystems],
            "dataOperation": {"max_ops_file_size": self.max_ops_file_size,
                              "datatransfer_jobs_directives": []},
            "lastHealthCheck": now,
        }

    async def _systems(self, ctx: _Ctx) -> tuple[int, Any]:
        systems = [self.system_description(n) for n in self.schedulers]
        for system in systems:
            for entry in system["servicesHealth"]:
                message = self.unhealthy.get((system["name"], entry["serviceType"]))
                if message is not None:
                    entry.update(healthy=False, message=message)
        return 200, {"systems": systems}

    async def _liveness(self, ctx: _Ctx) -> tuple[int, Any]:
        return 200, {"healthcheckRuns": {}, "lastUpdate": int(time.time() * 1000)}

    async def _userinfo(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        try:
            return 200, sched.userinfo(self._user(ctx)).as_response()
        except AccountingError as e:
            raise _Reply(500, str(e)) from None

    async def _optional(self, ctx: _Ctx, method: str, key: str) -> tuple[int, Any]:
        sched = self._sched(ctx)
        fn = getattr(sched, method, None)
        if fn is None:
            raise _Reply(501, f"the {type(sched).__name__} backend of the double has no "
                              f"{method}(): {ctx.op.route} is not available with it")
        return 200, {key: await fn()}

    async def _partitions(self, ctx: _Ctx) -> tuple[int, Any]:
        return await self._optional(ctx, "partition_models", "partitions")

    async def _reservations(self, ctx: _Ctx) -> tuple[int, Any]:
        return await self._optional(ctx, "reservation_models", "reservations")

    async def _nodes(self, ctx: _Ctx) -> tuple[int, Any]:
        return await self._optional(ctx, "node_models", "nodes")

    # -- compute ---------------------------------------------------------------------
    async def _submit(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        job = JobSubmission.from_request(ctx.body["job"])
        if job.script is None and job.script_path is None:
            raise _Reply(400, "One of 'script' or 'scriptPath' is required", "validation")
        try:
            job_id = await sched.submit(self._user(ctx), job)
        except SchedulerError as e:
            raise _Reply(500, str(e)) from None
        self.job_counts[job_id] += 1
        return 201, {"jobId": job_id}

    async def _jobs(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        try:
            jobs = await sched.jobs(self._user(ctx), None, bool(ctx.params.get("allusers")),
                                    ctx.params.get("account"))
        except AccountingError as e:
            raise _Reply(500, str(e)) from None
        return 200, {"jobs": jobs}

    async def _job(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        try:
            return 200, {"jobs": await sched.jobs(self._user(ctx), ctx.params["job_id"])}
        except JobNotFound:
            raise _Reply(404, "Job not found.") from None
        except AccountingError as e:
            raise _Reply(500, str(e)) from None

    async def _metadata(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        try:
            return 200, {"jobs": await sched.metadata(self._user(ctx), ctx.params["job_id"])}
        except JobNotFound:
            raise _Reply(404, "Job not found.") from None

    async def _cancel(self, ctx: _Ctx) -> tuple[int, Any]:
        sched = self._sched(ctx)
        try:
            await sched.cancel(self._user(ctx), ctx.params["job_id"])
        except SchedulerError as e:
            raise _Reply(500, str(e)) from None
        return 204, None

    # -- filesystem ------------------------------------------------------------------
    async def _upload(self, ctx: _Ctx) -> tuple[int, Any]:
        self._sched(ctx)
        directory = self._fs_path(ctx)
        field = ctx.form.get("file")
        if field is None or not hasattr(field, "file"):
            raise _Reply(422, "multipart field 'file' must be a file", "validation")
        data = field.file.read()
        if len(data) > self.max_ops_file_size:
            raise _Reply(413, f"File is larger than max_ops_file_size "
                              f"({self.max_ops_file_size} bytes): use the transfer endpoints")
        if not directory.is_dir():
            raise _Reply(400, f"'{directory}' is not a directory")
        name = os.path.basename(field.filename or "upload")
        (directory / name).write_bytes(data)
        return 204, None

    async def _view(self, ctx: _Ctx) -> tuple[int, Any]:
        self._sched(ctx)
        path = self._fs_path(ctx)
        size = ctx.params.get("size") or self.max_ops_file_size
        offset = ctx.params.get("offset") or 0
        try:
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read(min(size, self.max_ops_file_size))
        except FileNotFoundError:
            raise _Reply(400, f"head: cannot open '{path}' for reading: No such file or directory")
        except IsADirectoryError:
            raise _Reply(400, f"'{path}' is a directory")
        return 200, {"output": data.decode("utf-8", errors="replace")}

    async def _tail(self, ctx: _Ctx) -> tuple[int, Any]:
        """``tail -c N`` / ``tail -n N`` (default 10 lines); ``skipHeading``: all but the
        first N (``tail -c +N+1``). At most ``max_ops_file_size`` bytes are read."""
        self._sched(ctx)
        path = self._fs_path(ctx)
        n_bytes, n_lines = ctx.params.get("bytes"), ctx.params.get("lines")
        if n_bytes is not None and n_lines is not None:
            raise _Reply(400, "tail: 'bytes' and 'lines' cannot be given together")
        skip = bool(ctx.params.get("skipHeading"))
        if skip and n_bytes is None and n_lines is None:
            raise _Reply(400, "tail: 'skipHeading' needs 'bytes' or 'lines'")
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise _Reply(400, f"tail: error reading '{path}': Is a directory")
            with path.open("rb") as f:
                start = max(0, size - self.max_ops_file_size)
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            raise _Reply(400, f"tail: cannot open '{path}' for reading: "
                              "No such file or directory") from None
        except PermissionError:
            raise _Reply(400, f"tail: cannot open '{path}' for reading: "
                              "Permission denied") from None
        if n_bytes is not None:
            cut = min(len(data), int(n_bytes))
            part = data[cut:] if skip else data[len(data) - cut:]
            unit = "bytes"
        else:
            count = 10 if n_lines is None else int(n_lines)
            lines = data.splitlines(keepends=True)
            part = b"".join(lines[count:] if skip else lines[max(0, len(lines) - count):])
            unit = "lines"
        end = size
        return 200, {"output": {"content": part.decode("utf-8", errors="replace"),
                                "contentType": unit, "startPosition": end - len(part),
                                "endPosition": end}}

    async def _ls(self, ctx: _Ctx) -> tuple[int, Any]:
        self._sched(ctx)
        path = self._fs_path(ctx)
        if not path.exists():
            raise _Reply(400, f"ls: cannot access '{path}': No such file or directory")
        hidden = bool(ctx.params.get("showHidden"))
        entries = [path] if not path.is_dir() else sorted(path.iterdir())
        out = []
        for e in entries:
            if e.name.startswith(".") and not hidden:
                continue
            st = e.lstat()
            kind = "d" if e.is_dir() and not e.is_symlink() else "l" if e.is_symlink() else "-"
            out.append({
                "name": e.name, "type": kind, "user": str(st.st_uid), "group": str(st.st_gid),
                "permissions": stat_mod.filemode(st.st_mode)[1:],
                "lastModified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(st.st_mtime)),
                "size": str(st.st_size),
                "linkTarget": os.readlink(e) if e.is_symlink() else None,
            })
        return 200, {"output": out}
