#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container run by rootless
# Podman as the job user (the image must be in that user's Podman storage: podman pull,
# or podman load of a saved image). The container shares the node's network (the hub
# and the proxy reach JupyterLab at the node's address) and keeps the user's uid; the
# job's working directory and home are mounted at the same paths; the container runs as
# the job user's uid and gid (whatever USER the image names). When Slurm ends the job
# the container is stopped and removed, so no JupyterLab outlives its job.
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
{{setup}}
{{launch}}
