#!/bin/bash
{{directives}}
# JupyterLab for JupyterHub, started by FirecRESTSpawner: in a container run by rootless
# Podman as the job user (the image must be in that user's Podman storage: podman pull,
# or podman load of a saved image). The container shares the node's network (the hub
# and the proxy reach JupyterLab at the node's address) and keeps the user's uid; the
# job's working directory and home are mounted at the same paths; the container runs as
# the job user's uid and gid (whatever USER the image names).
# The spawner validated every value below and shell-quoted those that come from users.
{{output}}
# The hub's variables are passed by name (--env NAME*), never as values on a command line.
{{setup}}
mounts=(--volume "$HOME:$HOME")
case "$PWD/" in
    "$HOME"/*) ;;
    *) mounts+=(--volume "$PWD:$PWD") ;;
esac
exec podman run --rm --network=host --userns=keep-id --user "$(id -u):$(id -g)" \
    "${mounts[@]}" --workdir "$PWD" --env HOME="$HOME" \
    --env 'JUPYTERHUB_*' --env 'JPY_*' --env 'FIRECRESTSPAWNER_*' \
    {{container_args}}{{container_image}} firecrestspawner-singleuser {{args}}
