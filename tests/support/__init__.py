"""Shared test support: the hub API stub, the launch check and the catalogue's stacks.

- :mod:`tests.support.hubstub` — a minimal JupyterHub API on loopback;
- :mod:`tests.support.launch` — :class:`~tests.support.launch.LaunchCheck`, the launch
  check used by the singleuser image checks, the recipe checks and the launcher tests;
- :mod:`tests.support.stacks` — versions from catalogue.toml and cached stack venvs.
"""
