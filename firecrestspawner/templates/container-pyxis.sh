#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container through
# enroot/pyxis (srun --container-image=).
# Every {{...}} value below was validated and shell-quoted by the spawner.
{{setup}}
exec srun --nodes=1 --ntasks=1 --container-image={{container_image}} {{container_args}} firecrestspawner-singleuser {{args}}
