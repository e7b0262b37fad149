"""Port check of the hub side; hosts are checked by the one shared host validator
(:mod:`firecrestspawner.compute.hosts`, stdlib only, also used by the launcher)."""

from __future__ import annotations

from .compute.hosts import check_host


def validate_host(host: object) -> str:
    """Return ``host`` canonical if it is a host name or IP address the hub may use,
    else raise ValueError (:func:`~firecrestspawner.compute.hosts.check_host`)."""
    return check_host(host)


def validate_port(port: object) -> int:
    """Return ``port`` if it is an int in 1..65535, else raise ValueError."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r} must be an integer between 1 and 65535")
    return port
