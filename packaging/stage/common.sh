# Sourced by the package builders (deb, rpm, splunk): the checkout, the output
# directory ($1, default build/), the agent's version, a scratch directory
# removed on exit, and reproducible timestamps (the last commit's).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/build}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/agent/__init__.py")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
chmod 0755 "$scratch"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
mkdir -p "$out"
