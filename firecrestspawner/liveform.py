"""The live options form: what the cluster can give right now, from FirecREST.

FirecREST v2 tells, for the logged-in user:

* ``GET /status/{system}/partitions`` — each partition and its Slurm state (FirecREST
  puts the partition's ``State`` in the ``partition`` field: ``UP``, ``DOWN``,
  ``DRAIN``, ``INACTIVE``; a list in slurmrestd mode);
* ``GET /status/{system}/nodes`` — each node's partitions and states (idle nodes are the
  free ones: FirecREST's partition answer has no free-node count);
* ``GET /status/{system}/reservations`` — the reservations;
* ``GET /status/{system}/userinfo`` — the user's Slurm ``accounts`` (and the default).

:func:`cluster_view` asks for them (the system's answers are shared by every user, the
accounts are per user; both kept ``live_form_ttl`` seconds, one request in flight per
key, bounded by ``live_form_timeout``). :func:`offer` bounds them by the site's
allow-lists; :func:`options_form` renders the form (each partition with its state and
free nodes; a visible note when FirecREST could not answer, then the site's lists);
:func:`check_live` refuses a choice the same data does not allow (a partition that is
not listed or not UP, an account or reservation not listed), for the form and for
``user_options`` sent to the REST API alike (``start()`` calls :func:`gate`).
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from .errors import InvalidOptions, LoginRequired
from .gateway import Failure, GatewayError, JobGateway
from .lifecycle import State
from .options import (
    JobOptions,
    Limits,
    OptionError,
    excerpt,
    form_to_options,
    render_form,
    validate_options,
)

#: Node states that make an idle node unusable (FirecREST's NodeModel.state values).
_NOT_FREE = frozenset({"DOWN", "DRAIN", "OFFLINE", "RESERVED", "POWERING_DOWN",
                       "POWERING_UP", "UNKNOWN", "COMPLETING", "ALLOCATED", "MIXED", "BUSY"})
#: Failed answers are kept at most this long (FirecREST is asked again soon after).
FAILURE_TTL = 10.0

#: The clock TTLs are measured with (a test may advance its own).
_clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Partition:
    """One partition as FirecREST reports it."""

    name: str
    state: str
    total_nodes: int | None = None
    #: Idle nodes (None when the node list could not be read).
    free_nodes: int | None = None

    @property
    def usable(self) -> bool:
        """Whether jobs can start there now (Slurm state UP)."""
        return self.state.upper() == "UP"

    def describe(self) -> str:
        """``UP, 3 of 8 nodes free``."""
        text = self.state
        if self.free_nodes is not None and self.total_nodes is not None:
            text += f", {self.free_nodes} of {self.total_nodes} nodes free"
        elif self.free_nodes is not None:
            text += f", {self.free_nodes} nodes free"
        return text


@dataclass(frozen=True)
class ClusterView:
    """What FirecREST said about the system and the user; None: not known."""

    partitions: tuple[Partition, ...] | None = None
    reservations: tuple[str, ...] | None = None
    accounts: tuple[str, ...] | None = None
    default_account: str = ""
    #: What could not be read, one sentence each (shown on the form, logged).
    problems: tuple[str, ...] = ()
    #: Why no token could be had without a new login (empty: tokens are fine).
    login_required: str = ""

    def partition(self, name: str) -> Partition | None:
        """The partition called ``name``, if FirecREST listed it."""
        return next((p for p in self.partitions or () if p.name == name), None)


# ---------------------------------------------------------------- parsing FirecREST
def _state(value: Any) -> str:
    if isinstance(value, list):
        words = [str(v) for v in value if v]
        return "+".join(words) if words else "UNKNOWN"
    return str(value or "UNKNOWN")


def parse_partitions(partitions: Any, nodes: Any | None) -> tuple[Partition, ...]:
    """Partitions with their state and, when ``nodes`` is known, idle node counts."""
    free: dict[str, int] = {}
    counted: dict[str, int] = {}
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        states = {str(s).upper() for s in node.get("state") or []}
        for part in node.get("partitions") or []:
            counted[part] = counted.get(part, 0) + 1
            if "IDLE" in states and not states & _NOT_FREE:
                free[part] = free.get(part, 0) + 1
    out = []
    for item in partitions if isinstance(partitions, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        name = item["name"]
        total = item.get("totalNodes")
        out.append(Partition(
            name=name, state=_state(item.get("partition")),
            total_nodes=total if isinstance(total, int) else counted.get(name),
            free_nodes=free.get(name, 0) if nodes is not None else None))
    return tuple(out)


def parse_reservations(reservations: Any, now: float | None = None) -> tuple[str, ...]:
    """Names of the reservations that have not ended."""
    now = time.time() if now is None else now
    names = []
    for item in reservations if isinstance(reservations, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            end = item.get("endTime")
            if isinstance(end, int) and 0 < end < now:
                continue
            names.append(item["name"])
    return tuple(names)


def parse_accounts(userinfo: Any) -> tuple[tuple[str, ...] | None, str]:
    """(account names or None when FirecREST gave none, the default account)."""
    accounts = userinfo.get("accounts") if isinstance(userinfo, dict) else None
    if not accounts:
        return None, ""
    names = tuple(str(a["name"]) for a in accounts if isinstance(a, dict) and a.get("name"))
    default = next((str(a["name"]) for a in accounts
                    if isinstance(a, dict) and a.get("default") and a.get("name")), "")
    return names or None, default


# ---------------------------------------------------------------- cache
@dataclass
class _Entry:
    at: float
    value: Any
    ttl: float


class _Cache:
    """Answers per key for a TTL; one fetch in flight per key, shared by its callers."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Any, ...], _Entry] = {}
        self.tasks: dict[tuple[Any, ...], asyncio.Task[tuple[Any, bool]]] = {}

    def fresh(self, key: tuple[Any, ...]) -> tuple[bool, Any]:
        """(True, value) when a value younger than its TTL is cached."""
        entry = self.entries.get(key)
        if entry is not None and _clock() - entry.at < entry.ttl:
            return True, entry.value
        return False, None

    async def get(self, key: tuple[Any, ...], ttl: float,
                  fetch: Callable[[], Coroutine[Any, Any, tuple[Any, bool]]]) -> Any:
        """The cached value, or ``fetch()``'s (``(value, ok)``; failures kept shorter)."""
        entry = self.entries.get(key)
        if entry is not None and _clock() - entry.at < entry.ttl:
            return entry.value
        task = self.tasks.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(fetch())
            self.tasks[key] = task
            task.add_done_callback(lambda _t: self.tasks.pop(key, None))
        value, ok = await asyncio.shield(task)
        login = any(p.startswith(LOGIN) for p in value[-1])
        self.entries[key] = _Entry(_clock(), value, ttl if ok else 0.0 if login
                                   else min(ttl, FAILURE_TTL))
        return value


_system_cache = _Cache()
_user_cache = _Cache()


def clear() -> None:
    """Forget every cached answer (tests)."""
    for cache in (_system_cache, _user_cache):
        cache.entries.clear()


#: Marks a problem that needs a new login (such answers are not cached).
LOGIN = "login required: "


async def _ask(gw: JobGateway, what: str, make: Callable[[], Awaitable[Any]],
               timeout: float) -> tuple[Any, str]:
    """(FirecREST's answer or None, a sentence when it failed)."""
    try:
        return await asyncio.wait_for(gw.call(make), timeout), ""
    except GatewayError as exc:
        if exc.failure is Failure.LOGIN_REQUIRED:
            return None, LOGIN + exc.detail
        return None, f"{what}: {exc.detail}"
    except asyncio.TimeoutError:
        return None, f"{what}: no answer within {timeout:g} s"


async def cluster_view(spawner: Any) -> ClusterView:
    """Partitions, reservations and the user's accounts (cached, never raises)."""
    gw: JobGateway = spawner.gateway()
    client, system = gw.client, spawner.system
    timeout, ttl = spawner.live_form_timeout, spawner.live_form_ttl
    loop_key = (id(asyncio.get_running_loop()), spawner.firecrest_url, system)

    async def fetch_system() -> tuple[Any, bool]:
        (parts, e1), (nodes, e2), (resv, e3) = await asyncio.gather(
            _ask(gw, "partitions", lambda: client.partitions(system), timeout),
            _ask(gw, "nodes", lambda: client.nodes(system), timeout),
            _ask(gw, "reservations", lambda: client.reservations(system), timeout))
        value = (parse_partitions(parts, nodes) if parts is not None else None,
                 parse_reservations(resv) if resv is not None else None,
                 tuple(e for e in (e1, e2, e3) if e))
        return value, not value[2]

    async def fetch_user() -> tuple[Any, bool]:
        info, error = await _ask(gw, "accounts (userinfo)", lambda: client.userinfo(system),
                                 timeout)
        accounts, default = parse_accounts(info) if info is not None else (None, "")
        return (accounts, default, (error,) if error else ()), not error

    user_key = (*loop_key, spawner.user.name)
    (sys_ok, sys_value), (user_ok, user_value) = (_system_cache.fresh(loop_key),
                                                  _user_cache.fresh(user_key))
    if not (sys_ok and user_ok):  # (cached answers are used without yielding)
        sys_value, user_value = await asyncio.gather(
            _system_cache.get(loop_key, ttl, fetch_system),
            _user_cache.get(user_key, ttl, fetch_user))
    partitions, reservations, sys_problems = sys_value
    accounts, default, user_problems = user_value
    problems = (*sys_problems, *user_problems)
    login = next((p[len(LOGIN):] for p in problems if p.startswith(LOGIN)), "")
    return ClusterView(partitions, reservations, accounts, default,
                       tuple(p for p in problems if not p.startswith(LOGIN))
                       + (("your FirecREST token: " + login,) if login else ()), login)


# ---------------------------------------------------------------- site bounds
def _bounded(live: tuple[str, ...] | None, site: list[str]) -> list[str]:
    if live is None:
        return list(site)
    return [name for name in live if not site or name in site]


def offer(limits: Limits, view: ClusterView) -> Limits:
    """The site ``limits`` narrowed to what FirecREST reports (the form's menus)."""
    partitions = _bounded(tuple(p.name for p in view.partitions)
                          if view.partitions is not None else None, limits.allowed_partitions)
    usable = [n for n in partitions if (p := view.partition(n)) is None or p.usable]
    default_partition = limits.default_partition
    if view.partitions is not None and default_partition not in usable:
        default_partition = usable[0] if usable else ""
    accounts = _bounded(view.accounts, limits.allowed_accounts)
    default_account = limits.default_account
    if view.accounts is not None and default_account not in accounts:
        default_account = view.default_account if view.default_account in accounts else ""
    return replace(limits, allowed_partitions=partitions, default_partition=default_partition,
                   allowed_accounts=accounts, default_account=default_account,
                   allowed_reservations=_bounded(view.reservations,
                                                 limits.allowed_reservations))


def check_live(options: JobOptions, limits: Limits, view: ClusterView,
               system: str) -> None:
    """Raise :class:`OptionError` when ``options`` (already valid for the site) ask for
    what FirecREST does not offer now."""
    offered = offer(limits, view)
    if view.partitions is not None and options.partition:
        part = view.partition(options.partition)
        usable = [p for p in (view.partition(n) for n in offered.allowed_partitions)
                  if p is not None and p.usable]
        choose = ("; choose one of " + ", ".join(f"{excerpt(p.name)} ({p.describe()})"
                                                  for p in usable[:10])
                  if usable else "; no partition is usable now, try again later")
        if part is None or options.partition not in offered.allowed_partitions:
            raise OptionError("partition", f"{excerpt(options.partition)} is not offered on "
                              f"{system} (FirecREST does not list it for you){choose}")
        if not part.usable:
            raise OptionError("partition", f"{excerpt(part.name)} is {part.state} on {system} "
                              f"right now (as FirecREST reports it), so no job can start "
                              f"there{choose}")
    if view.accounts is not None and options.account and \
            options.account not in offered.allowed_accounts:
        raise OptionError("account", f"{excerpt(options.account)} is not one of your "
                          f"accounts on {system}; choose one of "
                          + ", ".join(excerpt(a) for a in offered.allowed_accounts[:10]))
    if view.reservations is not None and options.reservation and \
            options.reservation not in offered.allowed_reservations:
        raise OptionError("reservation", f"{excerpt(options.reservation)} is not a current "
                          f"reservation on {system}" + (
                              "; choose one of " + ", ".join(
                                  excerpt(r) for r in offered.allowed_reservations[:10])
                              if offered.allowed_reservations else ""))


# ---------------------------------------------------------------- JupyterHub hooks
async def _view(spawner: Any) -> ClusterView | None:
    if not spawner.live_form:
        return None
    view = await cluster_view(spawner)
    if view.problems:
        spawner.log.warning("%s: FirecREST could not tell the live form %s",
                            spawner._log_name, "; ".join(view.problems))
    return view


def note_html(view: ClusterView, system: str) -> str:
    """The visible note when FirecREST could not answer (empty otherwise)."""
    if not view.problems:
        return ""
    if view.partitions is None:
        lead, which = "what", "The choices below are this site's defaults"
    else:  # the partitions are live, something else is not
        lead, which = "all that", "Where it could not answer, the choices are this site's defaults"
    return ('<div class="alert alert-warning" role="alert" id="fs-live-note">'
            f"FirecREST could not tell {lead} {html.escape(system)} offers right now ("
            + html.escape("; ".join(view.problems)) +
            f"). {which}; a choice the cluster cannot take is refused when the server "
            "starts.</div>")


async def options_form(spawner: Any) -> str:
    """``Spawner.options_form`` (a coroutine JupyterHub awaits): the live form."""
    limits = spawner.limits()
    parts = []
    last = getattr(spawner, "end_reason", "")
    if last:
        parts.append('<div class="alert alert-info" role="status" id="fs-last-end">'
                     f"Your last server ended: {html.escape(last)}</div>")
    view = await _view(spawner)
    if view is None:
        return "\n".join([*parts, render_form(limits)])
    parts.append(note_html(view, spawner.system))
    offered = offer(limits, view)
    labels: dict[str, dict[str, str]] = {"partition": {}}
    disabled: dict[str, set[str]] = {"partition": set()}
    for name in offered.allowed_partitions:
        part = view.partition(name)
        if part is not None:
            labels["partition"][name] = f"{name} ({part.describe()})"
            if not part.usable:
                disabled["partition"].add(name)
    parts.append(render_form(offered, labels=labels, disabled=disabled))
    return "\n".join(p for p in parts if p)


async def options_from_form(formdata: dict[str, list[str]], spawner: Any = None) -> dict[str, Any]:
    """``Spawner.options_from_form``: flatten, validate against the site's limits and the
    live data (a refusal shows on the form, naming the field)."""
    options = form_to_options(formdata)
    if spawner is None:
        return dict(options)
    limits = spawner.limits()
    job = validate_options(options, limits)
    view = await _view(spawner)
    if view is not None:
        check_live(job, limits, view, spawner.system)
    return job.as_user_options()


async def gate(spawner: Any, options: JobOptions) -> None:
    """Check a start's validated ``options`` against the live data, before anything is
    submitted (``start()``, so the form and the REST API alike): a refusal raises
    :class:`~.errors.InvalidOptions` (HTTP 400) naming the field, a token that needs a
    new login :class:`~.errors.LoginRequired`; the server goes back to IDLE."""
    view = await _view(spawner)
    if view is None:
        return
    if view.login_required:
        spawner.lifecycle.to(State.IDLE, "no token for the live data")
        raise LoginRequired("Cannot get a FirecREST access token, nothing was submitted: "
                            + view.login_required)
    try:
        check_live(options, spawner.limits(), view, spawner.system)
    except OptionError as exc:
        spawner.lifecycle.to(State.IDLE, "options refused by the live data")
        raise InvalidOptions(f"Invalid server option {exc}") from None


__all__ = ["ClusterView", "Partition", "check_live", "cluster_view", "gate",
           "offer", "options_form", "options_from_form", "parse_partitions"]
