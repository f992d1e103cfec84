#!/usr/bin/env bash
# Build agentd-<version>-1.<arch>.rpm (make rpm) with rpmbuild; on Debian the
# `rpm` package's rpmbuild does (the spec defines the RHEL macros it needs).
. "$(dirname "$0")/../stage/common.sh"
top=$scratch
rpmbuild -bb --quiet \
    --define "_topdir $top" --define "_sourcedir $repo" --define "agentd_version $version" \
    --define "_buildhost agentd-build" --define "use_source_date_epoch_as_buildtime 1" \
    "$repo/packaging/rpm/agentd.spec" >"$top/log" 2>&1 || { cat "$top/log" >&2; exit 1; }
for rpm in "$top"/RPMS/*/agentd-*.rpm; do
    cp "$rpm" "$out/"
    echo "$out/$(basename "$rpm")"
done
