"""The compute side of firecrestspawner: what runs inside the Slurm job. Standard library only.

* :mod:`.launcher` — ``firecrestspawner-singleuser``, the job's entry point (the hub
  never imports it);
* :mod:`.envcodec` — the ``FIRECRESTSPAWNER_ENV`` encoding (the spawner encodes, the
  launcher decodes);
* :mod:`.hosts` — the one validator of a job's reported host (the launcher checks what
  it reports, the hub's callback handler checks what it receives and matches it against
  the job's allocated nodes).

This ``__init__`` imports nothing, so ``import firecrestspawner.compute.envcodec`` on the
hub does not load the launcher.
"""
