"""FirecREST spawner for JupyterHub (hub side) and its compute-side launcher.

Hub side: :class:`firecrestspawner.spawner.FirecRESTSpawner` (import it from
``firecrestspawner.spawner``; importing this package alone pulls in nothing
hub-only). Compute side, standard library only: the subpackage
:mod:`firecrestspawner.compute` — the ``firecrestspawner-singleuser`` console script
(:mod:`firecrestspawner.compute.launcher`, never imported by the hub), the job
environment codec and the host validator both sides share.
"""

__version__ = "0.1.0"
