"""The callback binding: the host a starting job reports must be one of the job's own nodes.

:class:`CallbackBinding` (a base of FirecRESTSpawner) handles a callback in two steps,
so that the check of the host costs JupyterLab's start-up nothing:

1. **record** (:meth:`CallbackBinding._bind_callback`, behind ``receive_callback``,
   answered at once): host and port are validated, and the host is checked against the
   nodes of the start flow's last job status that showed the job RUNNING
   (``_nodes_seen``: no FirecREST request). Found there, the binding is verified now
   (the handler answers 200); otherwise the claim is only recorded (202) and the launcher
   execs JupyterLab right away;
2. **verify** (:meth:`CallbackBinding._verify_binding`, in the start flow, while
   JupyterLab starts): the job's nodes from the start flow's own status check after the
   callback, and when the host is not among them, FirecREST is asked for the job's nodes
   again (``callback_node_lookups`` counts these requests). A host that is not the job's
   fails the start with a :class:`~.errors.StartFailed` (403) naming the host and the
   job; the start flow then cancels the job.

The hub never contacts a host before its binding is verified: ``start()`` checks that
JupyterLab answers (:mod:`.readiness`) only after step 2, and returns (hence the
proxy routes) only after both. A host matches when it is one of the job's allocated
nodes as FirecREST reports them, in a form the ``node_addresses`` setting allows, or an
IP address such a name resolves to (DNS looked up asynchronously: the hub's loop never
blocks). The matching itself is the shared, stdlib-only :mod:`firecrestspawner.compute.hosts`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from .compute.hosts import NO_NODES, HostMatch, expand_hostlist, match_allocated
from .core import Claim, SpawnerCore
from .errors import StartFailed
from .gateway import GatewayError
from .settings import node_addressing
from .slurm import JobStatus, Phase
from .validation import validate_host, validate_port


class CallbackBinding(SpawnerCore):
    """Accept a job's callback only for a host among the job's nodes (see the module text)."""

    async def _bind_callback(self, host: str, port: int) -> bool:
        """Record a callback (behind :meth:`~.spawner.FirecRESTSpawner.receive_callback`):
        True when its host was verified at once (one of the nodes the start flow saw),
        False when it is recorded for :meth:`_verify_binding`. Never asks FirecREST."""
        host = validate_host(host)
        port = validate_port(port)
        future = self._callback
        if not self._starting or future is None or (future.done() and not self._repeat(host, port)):
            raise RuntimeError(
                f"{self._log_name} is not waiting for a callback (job {self.job_id or 'none'});"
                " the server was not starting, or already got its callback"
            )
        if future.done():  # the launcher retrying after a lost answer: the same claim
            return future.result().verified is not None
        # The nodes the start flow's last status showed for this job (RUNNING): verified
        # now, without a FirecREST round trip. Otherwise recorded: the start flow verifies
        # the host while JupyterLab starts (see the module text).
        verdict = await self._match(host, self._nodes_seen) if self._nodes_seen else None
        claim = Claim(host, port, verdict.host if verdict else None)
        if future.done():  # another callback got in during the match
            if self._repeat(host, port):
                return future.result().verified is not None
            raise RuntimeError(f"{self._log_name} already got its callback "
                               f"(job {self.job_id})")
        future.set_result(claim)
        return claim.verified is not None

    def _repeat(self, host: str, port: int) -> bool:
        """Whether the start already recorded a callback for exactly ``host:port``."""
        future = self._callback
        if future is None or not future.done() or future.cancelled() or future.exception():
            return False
        claim = future.result()
        return (claim.host, claim.port) == (host, port)

    async def _verify_binding(self, claim: Claim,
                              status: JobStatus | None) -> tuple[str, JobStatus | None]:
        """The host the hub may connect to for ``claim`` (the reported host, or the
        address it resolved to), and the job status a FirecREST lookup made for it
        returned (None: no lookup); raises :class:`~.errors.StartFailed` (403) when the
        host is not one of the job's nodes. ``status``: the start flow's latest."""
        if claim.verified is not None:
            return claim.verified, None
        nodes = (status.nodes if status is not None and status.phase is Phase.RUNNING
                 and status.nodes not in NO_NODES else "")
        verdict = await self._match(claim.host, nodes) if nodes else None
        looked_up: JobStatus | None = None
        if verdict is None or not verdict:
            looked_up = await self._job_nodes()
            verdict = await self._match(claim.host, looked_up.nodes if looked_up else "")
        if self._stop_requested:
            raise StartFailed(f"The server was stopped while job {self.job_id} was "
                              "starting", 400)
        if not verdict:
            raise StartFailed(
                f"The callback was refused: job {self.job_id} reported a host that is not "
                f"its own: {verdict.reason}. The job was cancelled; if the launcher reports "
                "a name of the node the hub does not know, ask your administrator "
                "(FirecRESTSpawner.node_addresses)", 403)
        self.log.info("%s: callback host %s verified: a node of job %s", self._log_name,
                      claim.host, self.job_id)
        return verdict.host, looked_up

    async def _match(self, host: str, nodes: str) -> HostMatch:
        """Whether ``host`` is one of ``nodes`` (a Slurm host list), by name, by a
        ``node_addresses`` form, or by address (then the verdict's host is the address)."""
        addressing = node_addressing(self.node_addresses)
        verdict = match_allocated(host, nodes, addressing, await self._resolver(host, nodes))
        if not verdict and self.resolve_node_addresses:
            # a name such as the node's FQDN: accepted when it resolves to an address of
            # one of the job's nodes, and then that address is used (no later re-lookup)
            for address in await self._addresses(host):
                by_ip = match_allocated(address, nodes, addressing,
                                        await self._resolver(address, nodes))
                if by_ip:
                    return by_ip
        return verdict

    async def _job_nodes(self) -> JobStatus | None:
        """The job's status once FirecREST reports its nodes (waits up to
        callback_node_wait s for its accounting to show them); the last status seen
        (None: none) when it did not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.callback_node_wait
        last: JobStatus | None = None
        self.callback_node_lookups += 1
        while not self._stop_requested:
            try:
                last = await self.gateway().status(self.job_system, self.job_id,
                                                   confirm_gone=False)
                if last.nodes and last.nodes not in NO_NODES:
                    return last
            except GatewayError as exc:
                self.log.warning("%s: cannot read job %s's nodes for its callback: %s",
                                 self._log_name, self.job_id, exc.detail)
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.25)
        return last

    @staticmethod
    async def _addresses(name: str) -> list[str]:
        """The addresses ``name`` resolves to (asynchronous; [] for an IP or on error)."""
        try:
            ipaddress.ip_address(name)
            return []
        except ValueError:
            pass
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(name, None), 5.0)
        except (OSError, asyncio.TimeoutError):
            return []
        return sorted({str(info[4][0]) for info in infos})

    async def _resolver(self, host: str, nodes: str) -> Any:
        """A lookup table for :func:`match_allocated` (names -> addresses), filled
        asynchronously so that the hub's loop never blocks on DNS; None when off."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None  # a name: matched against the node names and templates only
        if not self.resolve_node_addresses:
            return None
        try:
            names = expand_hostlist(nodes)[:64]
        except ValueError:
            return None
        addressing = node_addressing(self.node_addresses)
        candidates = {n for n in names} | {t.format(node=n) for n in names
                                           for t in addressing.templates}
        loop = asyncio.get_running_loop()
        table: dict[str, list[str]] = {}
        for name in candidates:
            try:
                infos = await asyncio.wait_for(loop.getaddrinfo(name, None), 5.0)
            except (OSError, asyncio.TimeoutError):
                continue
            table[name] = [str(info[4][0]) for info in infos]
        return lambda name: table.get(name, [])
