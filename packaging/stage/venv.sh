#!/usr/bin/env bash
# Build agentd's private Python environment for a package:
#   venv.sh DESTDIR PREFIX PYTHON
# makes DESTDIR/PREFIX a virtual environment on the target's PYTHON (an absolute
# path that exists on the target, e.g. /usr/bin/python3.11) holding agentd and
# the wheels setup.cfg asks for, fetched from the package index at build time.
# The distributions' Python libraries are not used: Debian 12 has no
# python3-orjson and pySigma needs newer libraries than Debian or RHEL 9 ship.
# The environment is built in DESTDIR and then made to work at PREFIX (the
# paths pip wrote into scripts and pyvenv.cfg are rewritten).
set -euo pipefail
dest=$1 prefix=$2 python=$3
repo=$(cd "$(dirname "$0")/../.." && pwd)
root="$dest$prefix"
pip=${PIP:-$repo/.venv/bin/pip}
# A cache of its own: a wheel pip built from an sdist (systemd-python) for
# another interpreter must not be reused for PYTHON.
export PIP_CACHE_DIR=${AGENTD_PKG_PIP_CACHE:-$HOME/.cache/agentd-package-pip}

rm -rf "$root"
mkdir -p "$(dirname "$root")"
"$python" -m venv --without-pip "$root"
# The project's own wheel first (from this checkout), then its dependencies from
# the index; --no-compile: the package ships no bytecode (postinst compiles it).
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
# Built from a copy: setuptools' build/ directory in the checkout can hold
# modules that no longer exist, and they would end up in the wheel.
tar -C "$repo" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./tests \
    --exclude=./benchmarks --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$wheels" -xf -
"$pip" wheel -q --no-deps --wheel-dir "$wheels" "$wheels"
# PyYAML from source against the system's libyaml: its wheel carries a private
# copy of libyaml (lintian: embedded-library), and pySigma needs the C loader.
PYYAML_FORCE_CYTHON=1 PYYAML_FORCE_LIBYAML=1 \
"$pip" --python "$root/bin/python" install -q --no-compile --disable-pip-version-check \
    --no-warn-script-location --no-binary PyYAML "$wheels"/agentd-*.whl
# pip is not needed at run time and would invite `pip install` into the package's tree.
rm -rf "$root"/bin/pip* "$root"/lib/python3*/site-packages/pip "$root"/lib/python3*/site-packages/pip-*
find "$root" -name __pycache__ -prune -exec rm -rf {} +
# Scripts and pyvenv.cfg name the build path: make them name PREFIX.
grep -rlI --null -F "$root" "$root" | xargs -0 -r sed -i "s|$root|$prefix|g"
# Extension modules: no debug symbols in the package. Only scripts are executable.
find "$root" -name '*.so*' -type f -exec strip --strip-unneeded {} +
find "$root/lib" -type f -perm /111 ! -name '*.so*' -exec chmod a-x {} +
# A deterministic tree: no build timestamps in RECORD-less files, no stray modes.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -type f -exec chmod go-w {} +
