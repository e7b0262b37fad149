"""Configuration errors of the FirecREST spawner and a start-up check for the hub.

Each :class:`~firecrestspawner.spawner.FirecRESTSpawner` checks its settings when it is
created. To fail at hub start-up already (before any user starts a server), end
``jupyterhub_config.py`` with::

    from firecrestspawner.config import check_config
    check_config(c)
"""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A FirecRESTSpawner setting is missing or wrong; the message names the setting."""


def check_config(config: Any) -> None:
    """Raise :class:`ConfigError` naming the first wrong FirecRESTSpawner setting in ``config``.

    ``config`` is the traitlets ``Config`` of ``jupyterhub_config.py`` (``c``).
    """
    from .spawner import FirecRESTSpawner

    spawner = FirecRESTSpawner(config=config)
    if spawner.token_endpoint() is None:
        raise ConfigError(
            "FirecRESTSpawner.token_url: no OAuth token endpoint is configured for refreshing "
            "users' access tokens; set FirecRESTSpawner.token_url or "
            "GenericOAuthenticator.token_url"
        )
