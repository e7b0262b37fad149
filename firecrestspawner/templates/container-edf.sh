#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container through the
# CSCS Container Engine (environment definition file, srun --environment=).
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
{{setup}}
exec srun --nodes=1 --ntasks=1 --environment={{container_image}} {{container_args}}firecrestspawner-singleuser {{args}}
