"""The bastion's own access policy, as sshd -T reports it: WARN lines with the CIS
Benchmark item (CIS Debian Linux 12 v1.1.0; CIS RHEL 9 v2.0.0 where it differs), taken
from ComplianceAsCode's control files for both benchmarks. Where no CIS item covers a
setting, the line says so instead of citing one."""

from __future__ import annotations

from agent.app.doctor import sshd
from agent.app.doctor.finding import OK, WARN, Finding, cis, read_text

NOT_CONFIRMED = "CIS item not confirmed"
CIS_ROOT = cis("5.1.20", "5.1.20")
CIS_FORWARDING = cis("5.1.8", "5.1.10") + " DisableForwarding"
CIS_ALIVE = cis("5.1.7", "5.1.9")


SHADOW = "/etc/shadow"


def password_accounts() -> list:
    """Accounts with a usable password (a hash, not locked, or empty)."""
    text = read_text(SHADOW)
    if text is None:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and not parts[1].startswith(("!", "*")) and (parts[1] == "" or parts[1].startswith("$")):
            out.append(parts[0])
    return out


def _forwarding(s: sshd.Sshd, key: str, allowed: str, hides: str, fix: str, cis: str = CIS_FORWARDING) -> Finding:
    value = s.get(key, "")
    label = {"allowagentforwarding": "AllowAgentForwarding", "allowtcpforwarding": "AllowTcpForwarding",
             "gatewayports": "GatewayPorts", "permittunnel": "PermitTunnel",
             "x11forwarding": "X11Forwarding"}[key]
    name = f"posture.{label}"
    if s.get("disableforwarding") == "yes" and key != "permittunnel":
        return Finding(name, OK, f"{label} {value}, overridden by DisableForwarding yes", cis=cis)
    if value in ("no", ""):
        return Finding(name, OK, f"{label} no", cis=cis)
    return Finding(name, WARN, f"{label} {value}: {allowed}", hides, fix, cis)


def checks(ctx) -> list:
    s = sshd.find(ctx)
    if s.error or not s.settings:
        return []
    cfg = s.config
    out = []
    root = s.get("permitrootlogin", "prohibit-password")
    if root == "no":
        out.append(Finding("posture.PermitRootLogin", OK, "PermitRootLogin no", cis=CIS_ROOT))
    else:
        how = {"yes": "with a password or a key", "prohibit-password": "with a key",
               "without-password": "with a key", "forced-commands-only": "with a key, for forced commands"}
        out.append(Finding("posture.PermitRootLogin", WARN, f"PermitRootLogin {root}: root can log in "
                           f"{how.get(root, '')}".rstrip(),
                           "who the person was: a shared root login names no one",
                           f"PermitRootLogin no in {cfg}; admins log in as themselves and use sudo", CIS_ROOT))
    pw = s.get("passwordauthentication") == "yes"
    kbd = s.get("kbdinteractiveauthentication", s.get("challengeresponseauthentication")) == "yes" \
        and s.get("usepam") == "yes"
    accounts = password_accounts()
    if pw or kbd:
        via = " and ".join(n for n, on in (("PasswordAuthentication", pw), ("keyboard-interactive via PAM", kbd)) if on)
        who = (f"{len(accounts)} account(s) have a password: {', '.join(accounts)}" if accounts
               else "no local account has a password (PAM may still accept other sources)")
        empty = "; PermitEmptyPasswords yes" if s.get("permitemptypasswords") == "yes" else ""
        out.append(Finding("posture.PasswordAuthentication", WARN, f"passwords accepted ({via}); {who}{empty}",
                           "nothing from agentd, but a guessed or phished password opens the bastion; no key "
                           "fingerprint ties the login to a person's device",
                           f"PasswordAuthentication no and KbdInteractiveAuthentication no in {cfg} (or MFA, below)",
                           f"{NOT_CONFIRMED} (related: PermitEmptyPasswords, {cis('5.1.19', '5.1.19')})"))
    else:
        out.append(Finding("posture.PasswordAuthentication", OK, "no password logins (keys only)",
                           cis=NOT_CONFIRMED))
    methods = s.get("authenticationmethods", "any")
    # MFA only when every allowed list needs two methods ("publickey,password publickey" does not).
    if methods == "any" or not all("," in m for m in methods.split()):
        out.append(Finding("posture.AuthenticationMethods", WARN, f"AuthenticationMethods {methods}: one factor "
                           "is enough (no MFA)", "nothing from agentd, but one stolen key or password is a login",
                           f"AuthenticationMethods publickey,keyboard-interactive in {cfg} with an OTP PAM module",
                           NOT_CONFIRMED))
    else:
        out.append(Finding("posture.AuthenticationMethods", OK, f"AuthenticationMethods {methods} (MFA)",
                           cis=NOT_CONFIRMED))
    out.append(_forwarding(s, "allowagentforwarding", "users' ssh agents are reachable on the bastion",
                           "root on the bastion (or the user's other processes) can use a forwarded agent to log "
                           "in elsewhere as that user; agentd sees the resulting connects, not whose key signed",
                           f"AllowAgentForwarding no in {cfg} (use ssh -J / ProxyJump instead)"))
    out.append(_forwarding(s, "allowtcpforwarding", "users can tunnel TCP through the bastion",
                           "what flows in forwarded channels (their connects are audited; the channel target is "
                           "logged by sshd only at LogLevel DEBUG)",
                           f"AllowTcpForwarding no in {cfg}, or only for a Match group that needs it"))
    out.append(_forwarding(s, "gatewayports", "remote forwards listen on all interfaces, not only loopback",
                           "who connects to those forwarded ports from the network",
                           f"GatewayPorts no in {cfg}", f"{NOT_CONFIRMED} ({CIS_FORWARDING} also turns remote forwards off)"))
    out.append(_forwarding(s, "permittunnel", "tun/tap device forwarding (a VPN through the bastion)",
                           "all traffic inside the tunnel: it makes no connect() on the bastion",
                           f"PermitTunnel no in {cfg}", NOT_CONFIRMED))
    out.append(_forwarding(s, "x11forwarding", "X11 clients on the bastion display on users' machines",
                           "what is shown over X11 (a compromised bastion can also read the user's display)",
                           f"X11Forwarding no in {cfg}"))
    interval = s.get("clientaliveinterval", "0")
    count = s.get("clientalivecountmax", "3")
    if interval in ("0", ""):
        out.append(Finding("posture.ClientAliveInterval", WARN, "ClientAliveInterval 0: dead or abandoned "
                           "connections are never noticed by sshd",
                           "nothing, but a session's end time is late or missing when the client vanished",
                           f"ClientAliveInterval 15 and ClientAliveCountMax 3 in {cfg}", CIS_ALIVE))
    else:
        out.append(Finding("posture.ClientAliveInterval", OK, f"ClientAliveInterval {interval}, "
                           f"ClientAliveCountMax {count}", cis=CIS_ALIVE))
    return out
