"""The lines of a batch script that run JupyterLab in a rootless Podman container.

Rootless Podman runs the container outside the job's process tree: ``conmon`` and the
container's processes are daemonised, and ``podman run`` re-executes itself in a user
namespace. When Slurm ends the job (``scancel``, the time limit), its signals therefore
may not reach JupyterLab, and its SIGKILL after ``KillWait`` may hit Podman half-way:

* with ``ProctrackType=proctrack/linuxproc`` the container keeps running after the job
  ended, outside Slurm's accounting, and nobody stops it;
* with a cgroup process tracker Podman can be killed before it removed the container, which
  stays in the user's storage (``--rm`` never ran) with the image it holds.

So the script does not ``exec podman run``. It runs the container in the background
under a name derived from the job id, with a label, and traps the job's end: the trap
stops the container (SIGTERM to the launcher, SIGKILL after :data:`STOP_SECONDS`) and
removes it, well inside Slurm's default ``KillWait`` of 30 s. At its start the script
also removes this user's labelled containers that are not running and whose job Slurm
no longer has: those an earlier job left when it was killed before Podman cleaned up.
"""

from __future__ import annotations

import re
import shlex

#: Label on every container the spawner's jobs start (value: the Slurm job id).
JOB_LABEL = "org.f7t4jhub.job"
#: Seconds ``podman stop`` gives JupyterLab to shut down before SIGKILL.
STOP_SECONDS = 3


# @LABEL@, @STOP@, @EXTRA@, @IMAGE@ and @LAUNCHER@ are filled in by podman_launch.
_LINES = r"""# Rootless Podman (firecrestspawner.podman): the container is named after the
# job and stopped and removed when Slurm ends the job; containers an earlier,
# killed job left behind are removed first.
f7t_container="f7t4jhub-job-${SLURM_JOB_ID:-$$}"
podman ps --all --filter label=@LABEL@ --format '{{.Names}} {{.State}}' 2>/dev/null |
    while read -r f7t_name f7t_state; do
        [ "$f7t_state" = running ] && continue
        # a job of this user that is starting or ending its container right now
        squeue --noheader --jobs "${f7t_name#f7t4jhub-job-}" \
            --states=PENDING,RUNNING,CONFIGURING,COMPLETING 2>/dev/null | grep -q . && continue
        podman rm --force --ignore "$f7t_name" >/dev/null
    done
f7t_mounts=(--volume "$HOME:$HOME")
case "$PWD/" in
    "$HOME"/*) ;;
    *) f7t_mounts+=(--volume "$PWD:$PWD") ;;
esac
f7t_end() {
    trap '' TERM INT HUP
    podman stop --ignore --time @STOP@ "$f7t_container" >/dev/null
    podman rm --force --ignore "$f7t_container" >/dev/null
    wait "$f7t_pid"
    exit 143
}
trap f7t_end TERM INT HUP
# The hub's variables are passed by name (--env NAME*), never as values.
podman run --rm --name "$f7t_container" --label @LABEL@="${SLURM_JOB_ID:-}" --sig-proxy=false \
    --network=host --userns=keep-id --user "$(id -u):$(id -g)" \
    "${f7t_mounts[@]}" --workdir "$PWD" --env HOME="$HOME" \
    --env 'JUPYTERHUB_*' --env 'JPY_*' --env 'FIRECRESTSPAWNER_*' \
    @EXTRA@@IMAGE@ @LAUNCHER@ &
f7t_pid=$!
wait "$f7t_pid"
"""


def podman_launch(image: str, container_args: list[str], launcher: str) -> str:
    """Shell lines that run ``launcher`` (already quoted) in ``image`` and clean up.

    ``container_args`` are the site's extra ``podman run`` arguments (quoted here).
    """
    values = {
        "@LABEL@": JOB_LABEL,
        "@STOP@": str(STOP_SECONDS),
        "@EXTRA@": "".join(f"{shlex.quote(a)} " for a in container_args),
        "@IMAGE@": shlex.quote(image),
        "@LAUNCHER@": launcher,
    }
    return re.sub("|".join(values), lambda m: values[m.group(0)], _LINES).rstrip("\n")
