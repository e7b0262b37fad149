#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: native Python environment.
# Every {{...}} value below was validated and shell-quoted by the spawner.
{{setup}}
if [ -n {{venv}} ]; then
    # shellcheck disable=SC1091
    source {{venv}}/bin/activate
fi
exec firecrestspawner-singleuser {{args}}
