"""The rootless Podman lines of a batch script, run by bash against a recording ``podman``.

What a job does with Podman when Slurm ends it decides whether JupyterLab outlives the job
and whether containers pile up in the user's storage (firecrestspawner.podman); the real
thing runs in tests/deploy, these check each rule in a second.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

from firecrestspawner.options import JobOptions
from firecrestspawner.podman import JOB_LABEL, STOP_SECONDS
from firecrestspawner.script import ScriptContext, packaged_template, render

# A stand-in podman: logs each call; 'ps' prints $FAKE_PS; 'run' records its pid and
# sleeps (or exits with $FAKE_RUN_EXIT); 'stop' ends the recorded 'run'.
FAKE_PODMAN = r"""#!/bin/bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
    ps) printf '%b' "$FAKE_PS" ;;
    run) echo $$ > "$FAKE_DIR/run.pid"
         [ -n "${FAKE_RUN_EXIT:-}" ] && exit "$FAKE_RUN_EXIT"
         exec sleep 30 ;;
    stop) kill "$(cat "$FAKE_DIR/run.pid")" ;;
esac
exit 0
"""
# A stand-in squeue: job 77 is still active (its container is being set up or stopped).
FAKE_SQUEUE = r"""#!/bin/bash
echo "squeue $*" >> "$FAKE_LOG"
case "$*" in *"--jobs 77 "*) echo "77 RUNNING" ;; *) echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1 ;; esac
"""


def script(image: str = "f7t4jhub/singleuser:x") -> str:
    options = JobOptions(environment="container", container_image=image)
    context = ScriptContext(args=["--debug"], container_engine="podman",
                            container_args=["--device", "nvidia.com/gpu=all"])
    return render(packaged_template("container", "podman"), options, context)


def start(tmp_path: pathlib.Path, **env: str) -> tuple[subprocess.Popen[str], pathlib.Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("podman", FAKE_PODMAN), ("squeue", FAKE_SQUEUE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "podman.log"
    log.touch()
    proc = subprocess.Popen(
        ["bash", "-s"], stdin=subprocess.PIPE, text=True, cwd=tmp_path,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "SLURM_JOB_ID": "42",
             "FAKE_LOG": str(log), "FAKE_DIR": str(tmp_path), "FAKE_PS": "", **env},
    )
    assert proc.stdin is not None
    proc.stdin.write(script())
    proc.stdin.close()
    return proc, log


def calls(log: pathlib.Path) -> list[str]:
    return log.read_text().splitlines()


def wait_for_run(proc: subprocess.Popen[str], log: pathlib.Path) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        run = [c for c in calls(log) if c.startswith("run ")]
        if run and (log.parent / "run.pid").exists():
            return run[0]
        assert proc.poll() is None, f"script ended early: {calls(log)}"
        time.sleep(0.05)
    raise AssertionError(f"podman run never started: {calls(log)}")


def test_the_jobs_end_stops_and_removes_its_container(tmp_path: pathlib.Path) -> None:
    """SIGTERM (scancel, time limit) to the script: the named container is stopped within
    STOP_SECONDS and removed, and the script ends at once, not at Slurm's SIGKILL."""
    proc, log = start(tmp_path)
    run = wait_for_run(proc, log)
    assert f"--name f7t4jhub-job-42 --label {JOB_LABEL}=42 --sig-proxy=false" in run
    assert "--rm" in run.split() and "--env JUPYTERHUB_* --env JPY_*" in run
    assert run.endswith("--device nvidia.com/gpu=all f7t4jhub/singleuser:x "
                        "firecrestspawner-singleuser --debug"), run
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 143
    assert time.monotonic() - t0 < 5
    end = calls(log)[-2:]
    assert end == [f"stop --ignore --time {STOP_SECONDS} f7t4jhub-job-42",
                   "rm --force --ignore f7t4jhub-job-42"], calls(log)


def test_jupyterlab_ending_by_itself_ends_the_job_with_its_status(
        tmp_path: pathlib.Path) -> None:
    """Lab shut down from inside (culler, File > Shut Down): its exit status is the job's,
    and nothing is stopped (``--rm`` removed the container)."""
    proc, log = start(tmp_path, FAKE_RUN_EXIT="7")
    assert proc.wait(10) == 7
    assert not [c for c in calls(log) if c.startswith(("stop", "rm "))], calls(log)


def test_containers_earlier_killed_jobs_left_are_removed_first(tmp_path: pathlib.Path) -> None:
    """Labelled containers that are not running and whose job Slurm no longer has (a killed
    job's, in any state) are removed before the new container starts; a running one (another
    job's Lab) and one whose job is still active (starting or ending) are kept."""
    listed = ("f7t4jhub-job-11 exited\\nf7t4jhub-job-12 running\\nf7t4jhub-job-13 stopping\\n"
              "f7t4jhub-job-77 created\\nf7t4jhub-job-14 created\\n")
    proc, log = start(tmp_path, FAKE_PS=listed)
    wait_for_run(proc, log)
    before_run = calls(log)[: next(i for i, c in enumerate(calls(log)) if c.startswith("run "))]
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(10)
    assert before_run[0] == (f"ps --all --filter label={JOB_LABEL} "
                             "--format {{.Names}} {{.State}}")
    removed = [c for c in before_run if c.startswith("rm ")]
    assert removed == ["rm --force --ignore f7t4jhub-job-11", "rm --force --ignore f7t4jhub-job-13",
                       "rm --force --ignore f7t4jhub-job-14"], before_run
    assert [c for c in before_run if c.startswith("squeue")] == [
        f"squeue --noheader --jobs {j} --states=PENDING,RUNNING,CONFIGURING,COMPLETING"
        for j in (11, 13, 77, 14)]
