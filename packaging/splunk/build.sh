#!/usr/bin/env bash
# Build the Splunk add-on TA-agentd-<version>.tgz (make splunk-ta) from
# packaging/splunk/TA-agentd, with the agent's version in app.conf.
. "$(dirname "$0")/../stage/common.sh"
stage=$scratch
cp -r "$repo/packaging/splunk/TA-agentd" "$stage/"
sed -i "s/@VERSION@/$version/" "$stage/TA-agentd/default/app.conf"
find "$stage" -type d -exec chmod 0755 {} + && find "$stage" -type f -exec chmod 0644 {} +
tgz="$out/TA-agentd-$version.tgz"
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$tgz" TA-agentd
echo "$tgz"
