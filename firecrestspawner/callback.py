"""The callback binding: the host a starting job reports must be one of the job's own nodes.

:class:`CallbackBinding` (a base of FirecRESTSpawner) checks a callback
(:meth:`CallbackBinding._bind_callback`, behind ``receive_callback``): the reported
host must be one of the job's allocated nodes as FirecREST reports them, in a form
the ``node_addresses`` setting allows, or an IP address such a name resolves to
(DNS looked up asynchronously: the hub's loop never blocks). The matching itself is
the shared, stdlib-only :mod:`firecrestspawner.compute.hosts`.

The nodes come from the start flow's last job status when it showed the job RUNNING
(``_nodes_seen``: FirecREST's answer about this job, seen during this start), so the
callback costs no FirecREST request; only a host that is not among them (or no nodes
seen yet) makes the check ask FirecREST for the job's nodes again
(``callback_node_lookups`` counts these requests).
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from .compute.hosts import NO_NODES, HostMatch, expand_hostlist, match_allocated
from .core import SpawnerCore
from .errors import StartFailed
from .gateway import GatewayError
from .settings import node_addressing
from .validation import validate_host, validate_port


class CallbackBinding(SpawnerCore):
    """Accept a job's callback only for a host among the job's nodes (see the module text)."""

    async def _bind_callback(self, host: str, port: int) -> None:
        """The check behind :meth:`~.spawner.FirecRESTSpawner.receive_callback`."""
        host = validate_host(host)
        port = validate_port(port)
        future = self._callback
        if (self._starting and future is not None and future.done()
                and not future.cancelled() and future.exception() is None
                and future.result() == (host, port)):
            return
        if not self._starting or future is None or future.done():
            raise RuntimeError(
                f"{self._log_name} is not waiting for a callback (job {self.job_id or 'none'});"
                " the server was not starting, or already got its callback"
            )
        # The nodes the start flow's last status showed for this job (RUNNING): no
        # FirecREST round trip when the host is one of them. None seen yet, or the host
        # is not among them: ask FirecREST now.
        verdict = await self._match(host, self._nodes_seen) if self._nodes_seen else None
        if verdict is None or not verdict:
            verdict = await self._match(host, await self._job_nodes())
        if not verdict:
            why = f"job {self.job_id} reported a host that is not its own: {verdict.reason}"
            if not future.done():
                future.set_exception(StartFailed(f"The callback was refused: {why}", 403))
            raise RuntimeError(why)
        if not future.done():
            future.set_result((verdict.host, port))

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

    async def _job_nodes(self) -> str:
        """The job's nodes as FirecREST reports them (waits up to callback_node_wait s
        for FirecREST's accounting to show them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.callback_node_wait
        nodes = ""
        self.callback_node_lookups += 1
        while True:
            try:
                status = await self.gateway().status(self.job_system, self.job_id,
                                                     confirm_gone=False)
                nodes = status.nodes
                if nodes and nodes not in NO_NODES:
                    return nodes
            except GatewayError as exc:
                self.log.warning("%s: cannot read job %s's nodes for its callback: %s",
                                 self._log_name, self.job_id, exc.detail)
            if loop.time() >= deadline:
                return nodes
            await asyncio.sleep(0.25)

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
