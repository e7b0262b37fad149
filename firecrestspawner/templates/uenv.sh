#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: inside a uenv image with a view.
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
{{setup}}
exec uenv run {{uenv}} --view={{uenv_view}} -- firecrestspawner-singleuser {{args}}
