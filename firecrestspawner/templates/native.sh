#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: native Python environment.
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
{{setup}}
if [ -n {{venv}} ]; then
    # shellcheck disable=SC1091
    source {{venv}}/bin/activate
fi
exec firecrestspawner-singleuser {{args}}
