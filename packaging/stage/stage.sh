#!/usr/bin/env bash
# Lay out agentd's installed tree under DESTDIR, shared by the deb and the rpm:
#   stage.sh DESTDIR PYTHON UNITDIR DOCDIR
#   /usr/lib/agentd          private Python environment (venv.sh) on PYTHON
#   /usr/bin/agentd          the command
#   /etc/agentd/agentd.conf  generated from the option schema, mode 0640
#   UNITDIR/agentd.service   the hardened unit
#   /usr/share/agentd/       audit rules, PAM line, sshd drop-in, ES template, Sigma rules:
#                            files the admin applies (nothing turns itself on)
#   /usr/share/man/          agentd(8), agentd.conf(5) generated from the code
#   DOCDIR/README.md
set -euo pipefail
dest=$1 python=$2 unitdir=$3 docdir=$4
repo=$(cd "$(dirname "$0")/../.." && pwd)
env=/usr/lib/agentd

"$repo/packaging/stage/venv.sh" "$dest" "$env" "$python"
# No activation scripts or tools of the dependencies: only the agent is run.
find "$dest$env/bin" -mindepth 1 \( -name 'python*' -o -name agentd \) -prune -o -exec rm -f {} +
rm -f "$dest$env/bin/agentd"

install -d -m 0755 "$dest/usr/bin"
cat > "$dest/usr/bin/agentd" <<SH
#!/bin/sh
# agentd: the code is in the private environment $env. -I: no PYTHON*
# variables, no user site-packages, nothing from the current directory.
exec $env/bin/python3 -I -m agent.app.cli "\$@"
SH
chmod 0755 "$dest/usr/bin/agentd"

install -d -m 0755 "$dest/etc/agentd"
"$dest$env/bin/python" -I -B -m agent.app.cli default-config > "$dest/etc/agentd/agentd.conf"
chmod 0640 "$dest/etc/agentd/agentd.conf"
install -D -m 0644 "$repo/packaging/systemd/agentd.service" "$dest$unitdir/agentd.service"

share="$dest/usr/share/agentd"
install -D -m 0644 "$repo/packaging/audit/agentd.rules" "$share/audit/agentd.rules"
for d in pam sshd elasticsearch; do
    [ -d "$repo/packaging/$d" ] || continue
    for f in "$repo/packaging/$d"/*; do
        [ -f "$f" ] && install -D -m 0644 "$f" "$share/$d/$(basename "$f")"
    done
done

# SigmaHQ's Linux rules (rules/sigma, DRL 1.1): sigma_dirs = /usr/share/agentd/sigma
if [ -d "$repo/rules/sigma" ]; then
    (cd "$repo/rules/sigma" && find . -type f -print0) | while IFS= read -r -d '' f; do
        install -D -m 0644 "$repo/rules/sigma/$f" "$share/sigma/${f#./}"
    done
fi

for section in 8 5; do
    name=agentd; [ "$section" = 5 ] && name=agentd.conf
    install -d -m 0755 "$dest/usr/share/man/man$section"
    "$dest$env/bin/python" -I -B -m agent.app.manpage "$section" | gzip -9n > "$dest/usr/share/man/man$section/$name.$section.gz"
done

install -D -m 0644 "$repo/README.md" "$dest$docdir/README.md"
# Nothing above may leave bytecode in the package (postinst compiles it).
find "$dest$env" -name __pycache__ -prune -exec rm -rf {} +
# The interpreter link relative, so the package holds no absolute link (made
# last: in DESTDIR the relative link does not reach the build host's python).
case $python in
    /usr/bin/*) ln -sfn "../../../bin/$(basename "$python")" "$dest$env/bin/$(basename "$python")" ;;
esac
