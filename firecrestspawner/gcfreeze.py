"""Short garbage collections in the hub: freeze the heap JupyterHub built at start-up.

CPython's full ("generation 2") collection walks every tracked object of the process,
and it runs whenever the objects that survived younger collections since the last one
exceed a quarter of the old ones. A hub that restored 2000 servers holds a large heap
(its ORM rows, users, spawners, traitlets, the modules); walking it takes 100-200 ms on
a busy 2-core machine: a stall of the hub's event loop, every time batched polling's
listings and the polls' objects have piled up enough survivors.

:func:`freeze_after_start` calls :func:`gc.freeze` once JupyterHub has started (its
``start()`` is done: the spawners are restored and the hub serves): every object alive
then moves to a permanent generation that collections no longer walk, so a full
collection only walks what was made since. ``gc.freeze()`` itself costs nothing (no
collection runs); the price is that cyclic garbage alive at that moment is never freed
(start-up leftovers: a one-time, bounded amount). The image's ``jupyterhub_config.py``
calls it; ``F7T4JHUB_GC_FREEZE=0`` turns it off.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: Environment variable that turns the freeze off when set to 0/false/no/off.
ENV = "F7T4JHUB_GC_FREEZE"
#: The start future a freeze is already waiting for.
_armed: asyncio.Future[Any] | None = None


def freeze() -> int:
    """Freeze every object alive now; returns how many objects are frozen in all."""
    gc.freeze()
    return gc.get_freeze_count()


def freeze_after_start(app: Any = None, environ: Mapping[str, str] = os.environ) -> bool:
    """Arrange :func:`freeze` for when the JupyterHub ``app`` (default: the running
    ``JupyterHub`` instance) has started. Returns False, doing nothing, when turned off
    by ``F7T4JHUB_GC_FREEZE=0`` or when no hub is starting in this process (a tool
    loading the configuration, e.g. ``jupyterhub --show-config``)."""
    if environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        log.info("gc.freeze after start-up is off (%s=%s)", ENV, environ[ENV])
        return False
    if app is None:
        from jupyterhub.app import JupyterHub

        if not JupyterHub.initialized():
            return False
        app = JupyterHub.instance()
    # JupyterHub (5.x, 6.x) resolves _start_future at the end of start(); it exists from
    # the beginning of initialize(), before the configuration file is loaded.
    started = getattr(app, "_start_future", None)
    if not isinstance(started, asyncio.Future):
        log.warning("gc.freeze after start-up not arranged: this JupyterHub has no start "
                    "future to wait for (JupyterHub 5.x or 6.x expected); full garbage "
                    "collections will walk the whole heap")
        return False

    global _armed
    if started is _armed:  # the configuration was loaded again (jupyterhub --generate-certs)
        return True
    _armed = started
    hub_log = getattr(app, "log", None) or log

    def on_started(future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        count = freeze()
        hub_log.info("JupyterHub started: gc.freeze() moved %d objects out of the garbage "
                     "collector's reach (full collections now walk only newer objects)",
                     count)

    started.add_done_callback(on_started)
    return True
