"""Batch scripts: packaged templates, quoting, directives and template checks."""

from __future__ import annotations

import pathlib
import shlex
import stat
import subprocess

import pytest

from firecrestspawner.options import JobOptions
from firecrestspawner.script import (
    _PLACEHOLDER,
    ScriptContext,
    check_directive,
    check_template,
    launch_command,
    packaged_template,
    render,
    safe_job_name,
)

CONTEXT = ScriptContext(job_name="jupyterhub-alice", args=["--debug", "--x=a b"],
                        setup="module load cray-python", extra_directives=["--constraint=gpu"])


@pytest.mark.parametrize("environment, engine, launch", [
    ("native", "edf", "exec firecrestspawner-singleuser --debug '--x=a b'"),
    ("uenv", "edf", ("exec uenv run prgenv-gnu/24.11:v1 --view=default -- "
                     "firecrestspawner-singleuser --debug '--x=a b'")),
    ("container", "edf", "--environment=pytorch-25.10"),
    ("container", "pyxis", "--container-image=pytorch-25.10"),
    ("container", "podman", "--network=host --userns=keep-id"),
])
def test_packaged_templates(environment: str, engine: str, launch: str) -> None:
    options = JobOptions(partition="normal", account="proj", nodes=2, time_seconds=5400, gpus=4,
                         environment=environment, uenv="prgenv-gnu/24.11:v1",
                         uenv_view="default", container_image="pytorch-25.10")
    context = ScriptContext(**{**CONTEXT.__dict__, "container_engine": engine})
    script = render(packaged_template(environment, engine), options, context)
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=jupyterhub-alice\n")
    for line in ("#SBATCH --partition=normal", "#SBATCH --account=proj", "#SBATCH --nodes=2",
                 "#SBATCH --time=0-01:30:00", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --constraint=gpu", "#SBATCH --output=jupyterhub-%j.log",
                 "module load cray-python"):
        assert line in script.splitlines()
    assert launch in script
    assert not _PLACEHOLDER.search(script)  # Podman's own --format '{{.Names}}' may remain
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_podman_passes_the_hubs_variables_by_name_only() -> None:
    """Podman gets the hub's variables by name (``--env NAME*``), never their values."""
    options = JobOptions(environment="container", container_image="f7t4jhub/singleuser:x")
    context = ScriptContext(**{**CONTEXT.__dict__, "container_engine": "podman"})
    for text in (render(packaged_template("container", "podman"), options, context),
                 launch_command(options, context)):
        assert "--env 'JUPYTERHUB_*'" in text and "--env 'FIRECRESTSPAWNER_*'" in text
        assert "--network=host" in text
        assert "f7t4jhub/singleuser:x firecrestspawner-singleuser --debug '--x=a b'" in text
        assert "=$JUPYTERHUB" not in text and "${JUPYTERHUB" not in text


def test_native_venv_is_activated_and_quoted() -> None:
    options = JobOptions(environment="native", venv="/opt/jupyter+lab/venv")
    script = render(packaged_template("native"), options, CONTEXT)
    assert "source /opt/jupyter+lab/venv/bin/activate" in script
    assert "if [ -n /opt/jupyter+lab/venv ]" in script


def test_values_reach_the_shell_as_single_words() -> None:
    """Even a value that slipped past validation stays one word in the launch line."""
    nasty = "img; touch /tmp/pwned $(id) `id` 'q'"
    options = JobOptions(environment="container", container_image=nasty)
    line = launch_command(options, CONTEXT)
    words = shlex.split(line)
    assert f"--environment={nasty}" in words


def test_template_checks_name_the_setting() -> None:
    with pytest.raises(ValueError, match="batch_script_template: the script must start"):
        check_template("{{directives}}\nfirecrestspawner-singleuser")
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['partition'\]"):
        check_template("#!/bin/bash\n{{partition}}\n{{launch}}")
    with pytest.raises(ValueError, match="never runs firecrestspawner-singleuser"):
        check_template("#!/bin/bash\n{{directives}}\njupyter lab")
    check_template("#!/bin/bash\n{{directives}}\necho $HOME ${USER}\n{{launch}}\n")


def test_site_template_keeps_shell_variables() -> None:
    template = "#!/bin/bash\n{{directives}}\nexport SCRATCH=${SCRATCH:-$HOME}\n{{launch}}\n"
    script = render(template, JobOptions(), CONTEXT)
    assert "export SCRATCH=${SCRATCH:-$HOME}" in script
    assert script.rstrip().endswith("firecrestspawner-singleuser --debug '--x=a b'")


def test_directives_are_single_options() -> None:
    check_directive("--constraint=gpu")
    for bad in ("--constraint=gpu --x", "constraint=gpu", "--c=a\n#SBATCH --x", "--c='a'"):
        with pytest.raises(ValueError):
            check_directive(bad)


def test_job_names() -> None:
    assert safe_job_name("jupyterhub-alice-") == "jupyterhub-alice"
    assert safe_job_name("jupyterhub-a b;c") == "jupyterhub-a-b-c"
    assert safe_job_name("") == "jupyterhub"
    assert len(safe_job_name("x" * 100)) == 64


@pytest.mark.parametrize("environment, engine", [
    ("native", "edf"), ("uenv", "edf"), ("container", "edf"), ("container", "pyxis"),
    ("container", "podman")])
def test_every_template_sends_its_output_to_the_log_folder(
        environment: str, engine: str, tmp_path: pathlib.Path) -> None:
    """Each packaged template creates the log folder (mode 700) before its first command and
    sends stdout and stderr there; sbatch's own --output is /dev/null."""
    options = JobOptions(environment=environment, uenv="prgenv-gnu/24.11:v1",
                         uenv_view="default", container_image="pytorch-25.10")
    context = ScriptContext(**{**CONTEXT.__dict__, "container_engine": engine,
                               "log_dir": ".jupyterhub-logs", "setup": "echo set-up; exit 3",
                               "env": {"FIRECRESTSPAWNER_ENV": "e30"}})
    script = render(packaged_template(environment, engine), options, context)
    assert "#SBATCH --output=/dev/null" in script.splitlines()
    lines = script.splitlines()
    redirect = next(i for i, line in enumerate(lines) if line.startswith("mkdir -p -m 700"))
    assert lines.index("export FIRECRESTSPAWNER_ENV=e30") < redirect < lines.index(
        "echo set-up; exit 3")
    done = subprocess.run(["bash", "-s"], input=script, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "42"},
                          capture_output=True, check=False)
    assert done.returncode == 3 and done.stdout == ""
    log = tmp_path / ".jupyterhub-logs" / "jupyterhub-42.log"
    assert log.read_text() == "set-up\n"
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700


def test_a_site_template_without_the_output_placeholder_gets_it_after_the_environment() -> None:
    template = "#!/bin/bash\n{{directives}}\n# site\nmodule load x\nfirecrestspawner-singleuser\n"
    context = ScriptContext(log_dir="/scratch/alice/logs", output="lab-%j.out",
                            env={"A": "b"})
    lines = render(template, JobOptions(), context).splitlines()
    assert lines[lines.index("export A=b") + 2:][:2] == [
        ('mkdir -p -m 700 -- /scratch/alice/logs && exec >/scratch/alice/logs/'
         '"lab-${SLURM_JOB_ID}.out" 2>&1'), "module load x"]
