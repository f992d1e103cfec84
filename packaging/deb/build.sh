#!/usr/bin/env bash
# Build agentd_<version>_all.deb with dpkg-deb from this checkout.
# The package uses Debian's own Python libraries (python3-systemd, -psutil,
# -orjson, -httpx, -pyinotify), so nothing is compiled or downloaded at install.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/build}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$repo/agent/__init__.py")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
pylib="$stage/usr/lib/python3/dist-packages"
mkdir -p "$pylib" "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/agentd" "$stage/lib/systemd/system" \
         "$stage/etc/audit/rules.d" "$stage/usr/share/doc/agentd" "$stage/usr/share/agentd"
for pkg in agent collectors shippers; do
    (cd "$repo" && find "$pkg" -name '*.py' -print0 | xargs -0 -I{} install -D -m 0644 {} "$pylib/{}")
done
cat > "$stage/usr/bin/agentd" <<'SH'
#!/usr/bin/python3
import sys
from agent.app.cli import main
sys.exit(main())
SH
chmod 0755 "$stage/usr/bin/agentd"
install -m 0640 "$repo/agentd.conf" "$stage/etc/agentd/agentd.conf"
install -m 0644 "$repo/packaging/systemd/agentd.service" "$stage/lib/systemd/system/agentd.service"
install -m 0640 "$repo/packaging/audit/agentd.rules" "$stage/etc/audit/rules.d/agentd.rules"
install -m 0644 "$repo/README.md" "$stage/usr/share/doc/agentd/README.md"
if [ -f "$repo/packaging/elasticsearch/agentd-index-template.json" ]; then
    install -m 0644 "$repo/packaging/elasticsearch/agentd-index-template.json" "$stage/usr/share/agentd/"
fi
cp "$repo/packaging/deb/postinst" "$repo/packaging/deb/prerm" "$repo/packaging/deb/postrm" "$stage/DEBIAN/"
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
printf '/etc/agentd/agentd.conf\n/etc/audit/rules.d/agentd.rules\n' > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/control" <<CTL
Package: agentd
Version: $version
Architecture: all
Maintainer: agentd maintainers <agentd@localhost>
Depends: python3 (>= 3.9), python3-systemd, python3-psutil, python3-orjson, python3-httpx, python3-pyinotify, auditd
Recommends: libpam-modules
Section: admin
Priority: optional
Description: jump-server (bastion) monitoring agent
 Reads auditd's log and journald, joins events into SSH login sessions,
 normalizes them to ECS, spools them durably and ships them to Splunk HEC,
 Elasticsearch or a local file.
CTL
mkdir -p "$out"
dpkg-deb --root-owner-group --build "$stage" "$out/agentd_${version}_all.deb" >/dev/null
echo "$out/agentd_${version}_all.deb"
