#!/usr/bin/env bash
# Build agentd_<version>_<arch>.deb (make deb): packaging/stage/stage.sh lays out
# the tree with the private environment on Debian 12's /usr/bin/python3.11
# (wheels from the package index, so no python3-* library package is needed),
# then dpkg-deb packs it with the control files from here.
. "$(dirname "$0")/../stage/common.sh"
arch=$(dpkg --print-architecture)
stage=$scratch

"$repo/packaging/stage/stage.sh" "$stage" /usr/bin/python3.11 /lib/systemd/system /usr/share/doc/agentd
doc="$stage/usr/share/doc/agentd"
gzip -9n "$doc/README.md"
install -m 0644 "$repo/packaging/deb/copyright.in" "$doc/copyright"
# The bundled distributions and their licenses, read from their own metadata.
site=$(echo "$stage"/usr/lib/agentd/lib/python3*/site-packages)
/usr/bin/python3 -I - "$site" >> "$doc/copyright" <<'PY'
import sys
from importlib.metadata import distributions
for d in sorted(distributions(path=[sys.argv[1]]), key=lambda d: d.metadata["Name"].lower()):
    m = d.metadata
    lic = m.get("License-Expression") or ""
    if not lic:
        lic = "; ".join(c.split(" :: ")[-1] for c in (m.get_all("Classifier") or []) if c.startswith("License ::"))
    if not lic and m.get("License") and len(m["License"]) < 80:
        lic = m["License"]
    print(f" {m['Name']} {d.version}: {lic or 'see its dist-info directory'}")
PY
printf '%s\n' " The license texts are in each distribution's .dist-info directory under" \
    " /usr/lib/agentd/lib/." >> "$doc/copyright"
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
cat > "$stage/changelog" <<CL
agentd ($version) unstable; urgency=medium

  * Release $version; the changes are in the project's git history.

 -- agentd maintainers <agentd-maintainers@users.noreply.github.com>  $date
CL
gzip -9n -c "$stage/changelog" > "$doc/changelog.gz"
rm "$stage/changelog"
chmod 0644 "$doc"/*

install -d -m 0755 "$stage/DEBIAN"
install -m 0755 "$repo/packaging/deb/postinst" "$repo/packaging/deb/prerm" "$repo/packaging/deb/postrm" "$stage/DEBIAN/"
printf '/etc/agentd/agentd.conf\n' > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CTL
Package: agentd
Version: $version
Architecture: $arch
Maintainer: agentd maintainers <agentd-maintainers@users.noreply.github.com>
Installed-Size: $size
Depends: python3.11, libc6 (>= 2.34), libsystemd0, libyaml-0-2, adduser, init-system-helpers (>= 1.54~)
Recommends: auditd, libpam-modules
Section: admin
Priority: optional
Description: jump-server (bastion) monitoring agent
 Reads auditd's log and journald, joins events into SSH login sessions,
 normalizes them to ECS, spools them durably and ships them to Splunk HEC,
 Elasticsearch or a local file.
 .
 The agent runs from a private Python environment in /usr/lib/agentd.
CTL
(cd "$stage" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$out/agentd_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
