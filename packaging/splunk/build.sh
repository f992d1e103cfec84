#!/usr/bin/env bash
# Build the Splunk add-on TA-agentd-<version>.tgz (make splunk-ta) from
# packaging/splunk/TA-agentd, with the agent's version in app.conf.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/build}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/agent/__init__.py")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -r "$repo/packaging/splunk/TA-agentd" "$stage/"
sed -i "s/@VERSION@/$version/" "$stage/TA-agentd/default/app.conf"
find "$stage" -type d -exec chmod 0755 {} + && find "$stage" -type f -exec chmod 0644 {} +
mkdir -p "$out"
tgz="$out/TA-agentd-$version.tgz"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$tgz" TA-agentd
echo "$tgz"
