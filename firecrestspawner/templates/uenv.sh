#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: inside a uenv image with a view.
# Every {{...}} value below was validated and shell-quoted by the spawner.
{{setup}}
exec uenv run {{uenv}} --view={{uenv_view}} -- firecrestspawner-singleuser {{args}}
