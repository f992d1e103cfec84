"""Each enabled shipper's destination and its online health check (the same one
`agentd check-config --online` runs)."""

from __future__ import annotations

import urllib.parse

from agent.app.doctor.finding import FAIL, OK, Finding


def destination(comp) -> str:
    """Where a shipper sends events, for humans: the file path or the URL without any
    user, password or query (never a secret)."""
    conf = comp.conf
    if conf.get("path"):
        return str(conf["path"])
    url = conf.get("url")
    if url:
        u = urllib.parse.urlsplit(str(url))
        host = u.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{u.port}" if u.port else "")
        return urllib.parse.urlunsplit((u.scheme, netloc, u.path, "", ""))
    return "(no destination option)"


def health(cfg) -> list:
    """(section, ok, message) per enabled shipper."""
    out = []
    for comp in cfg.enabled("shipper"):
        try:
            shipper = comp.build()
        except Exception as e:  # a shipper that cannot even be built is a failed check, not a crash
            out.append((comp.section, False, f"cannot set up: {type(e).__name__}: {e}"))
            continue
        try:
            ok, msg = shipper.health()
        except Exception as e:
            ok, msg = False, f"{type(e).__name__}: {e}"
        finally:
            shipper.close()
        out.append((comp.section, ok, msg))
    return out


def checks(ctx) -> list:
    if not ctx.online:
        return []
    comps = {c.section: c for c in ctx.cfg.enabled("shipper")}
    out = []
    for section, ok, msg in health(ctx.cfg):
        name = f"shipper.{section.split(':', 1)[1]}"
        dest = destination(comps[section])
        if ok:
            out.append(Finding(name, OK, f"{comps[section].type_name} -> {dest}: {msg}"))
        else:
            out.append(Finding(name, FAIL, f"{comps[section].type_name} -> {dest}: {msg}",
                               "nothing yet: events wait in the spool until it is reachable, and are dropped "
                               "or block reading when the spool is full",
                               f"fix [{section}] in {ctx.config_path} or the destination; "
                               "`agentd check-config --online` re-tests it"))
    return out
