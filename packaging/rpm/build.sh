#!/usr/bin/env bash
# Build agentd-<version>-1.<arch>.rpm (make rpm) with rpmbuild; on Debian the
# `rpm` package's rpmbuild does (the spec defines the RHEL macros it needs).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/build}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/agent/__init__.py")
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)}
rpmbuild -bb --quiet \
    --define "_topdir $top" --define "_sourcedir $repo" --define "agentd_version $version" \
    --define "_buildhost agentd-build" --define "use_source_date_epoch_as_buildtime 1" \
    "$repo/packaging/rpm/agentd.spec" >"$top/log" 2>&1 || { cat "$top/log" >&2; exit 1; }
mkdir -p "$out"
for rpm in "$top"/RPMS/*/agentd-*.rpm; do
    cp "$rpm" "$out/"
    echo "$out/$(basename "$rpm")"
done
