#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container through
# enroot/pyxis (srun --container-image=).
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
{{setup}}
exec srun --nodes=1 --ntasks=1 --container-image={{container_image}} {{container_args}}firecrestspawner-singleuser {{args}}
