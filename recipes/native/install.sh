#!/bin/bash
# Install JupyterLab and firecrestspawner-singleuser into a Python virtual
# environment on an HPC cluster (the "native" install, no container, no uenv).
#
#   recipes/native/install.sh [--python PYTHON] [--spawner SOURCE] VENV
#
# VENV     the virtual environment to create (or reuse), e.g. /apps/jupyter/venv;
#          it must be on a file system the compute nodes mount.
# PYTHON   the interpreter the venv is made from (default: python3); at least the
#          version requirements.lock was generated for (its first line).
# SOURCE   where firecrestspawner comes from: a wheel file or a source checkout
#          (default: the checkout this script is in).
#
# The Jupyter stack is installed from requirements.lock beside this script, with
# hashes checked (generated from catalogue.toml by `nox -s lock`); the spawner
# package then goes in without dependencies, since the lock already holds them.
# pip uses the site's ordinary configuration (pip.conf, PIP_INDEX_URL, PIP_CERT).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
lock="${here}/requirements.lock"
python="python3"
spawner="$(cd "${here}/../.." && pwd)"
venv=""

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

fail() {
    echo "install.sh: error: $*" >&2
    exit 1
}

while [ "$#" -gt 0 ]; do
    case "$1" in
        --python) [ "$#" -ge 2 ] || fail "--python needs a value"; python="$2"; shift 2 ;;
        --spawner) [ "$#" -ge 2 ] || fail "--spawner needs a value"; spawner="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) fail "unknown option $1 (see --help)" ;;
        *) [ -z "${venv}" ] || fail "only one VENV may be given (see --help)"; venv="$1"; shift ;;
    esac
done
[ -n "${venv}" ] || fail "no VENV given: recipes/native/install.sh /path/to/venv (see --help)"
[ -f "${lock}" ] || fail "${lock} is missing: run 'nox -s lock' in the repository"
[ -e "${spawner}" ] || fail "spawner source ${spawner} does not exist: pass a wheel or checkout with --spawner"

# The lock says which Python it was resolved for: "... for python X.Y and newer."
wanted="$(sed -n '1s/.* for python \([0-9][0-9]*\.[0-9][0-9]*\) and newer.*/\1/p' "${lock}")"
[ -n "${wanted}" ] || fail "${lock} has no 'for python X.Y and newer' header: regenerate it with 'nox -s lock'"

command -v "${python}" >/dev/null 2>&1 \
    || fail "interpreter '${python}' not found: load a Python module or pass --python /path/to/python3"
"${python}" - "${wanted}" <<'PY' || fail "${python} is older than Python ${wanted}, which requirements.lock needs: pass a newer one with --python"
import sys
major, minor = (int(x) for x in sys.argv[1].split("."))
sys.exit(0 if sys.version_info[:2] >= (major, minor) else 1)
PY

if [ ! -x "${venv}/bin/python" ]; then
    echo "install.sh: creating ${venv} with $("${python}" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
    "${python}" -m venv "${venv}" \
        || fail "'${python} -m venv' failed: install the venv module (Debian: python3-venv) or use another Python"
fi
vpython="${venv}/bin/python"
"${vpython}" -m pip --version >/dev/null 2>&1 \
    || fail "${venv} has no pip: recreate it with '${python} -m venv' (not --without-pip)"

export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONNOUSERSITE=1

echo "install.sh: installing the locked Jupyter stack from ${lock}"
"${vpython}" -m pip install --no-cache-dir --require-hashes --prefer-binary -r "${lock}"

echo "install.sh: installing firecrestspawner from ${spawner}"
"${vpython}" -m pip install --no-cache-dir --no-deps "${spawner}"

"${vpython}" -m pip check
for tool in firecrestspawner-singleuser jupyterhub-singleuser jupyter-lab; do
    [ -x "${venv}/bin/${tool}" ] || fail "${venv}/bin/${tool} is missing after the install"
done
echo "install.sh: done. In the spawner's batch script: ${venv}/bin/firecrestspawner-singleuser"
