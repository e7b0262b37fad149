#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container through the
# CSCS Container Engine (environment definition file, srun --environment=).
# Every {{...}} value below was validated and shell-quoted by the spawner.
{{setup}}
exec srun --nodes=1 --ntasks=1 --environment={{container_image}} {{container_args}} firecrestspawner-singleuser {{args}}
