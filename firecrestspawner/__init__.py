"""FirecREST spawner for JupyterHub (hub side) and its compute-side launcher.

Hub side: :class:`firecrestspawner.spawner.FirecRESTSpawner` (import it from
``firecrestspawner.spawner``; importing this package alone pulls in nothing
hub-only). Compute side: the ``firecrestspawner-singleuser`` console script
(:mod:`firecrestspawner.singleuser`).
"""

__version__ = "0.1.0"
