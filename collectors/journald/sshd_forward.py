"""sshd's journal lines about forwarding -> sshd.forward fragments (pure).

What sshd says about forwarding at the levels a bastion runs (INFO, VERBOSE): the
channels it refuses and the targets it cannot reach. A granted channel is logged only
at DEBUG (``server_request_direct_tcpip``); those come from the snapshots collector,
which sees the login's sshd connect to the target. Between them a bastion sees both
the tunnels that went through and the ones that were tried and stopped by
``AllowTcpForwarding``, ``PermitOpen``/``permitopen=``, ``PermitListen`` or a key's
``restrict``.

- ``refused local port forward: originator A port N, target T port P`` (forwarding off
  for this login: ``-L``, ``-D``, ``-J``, ``-W``) -> ``forward-refused``, type
  ``direct-tcpip``;
- ``Received request from A port N to connect to host T port P, but the request was
  denied.`` (the target is outside ``PermitOpen``) -> ``forward-refused``, ``direct-tcpip``;
- ``refused streamlocal port forward: originator A port N, target PATH`` and ``Received
  request to connect to path PATH, but the request was denied.`` -> ``forward-refused``,
  ``direct-streamlocal`` (a Unix socket on the bastion);
- ``Received request from A port N to remote forward to host H port P, but the request
  was denied.`` (and ``to path "PATH"``, and without a host) -> ``forward-refused``,
  ``remote-forward`` / ``remote-streamlocal`` (``-R``: a listener on the bastion);
- ``error: connect_to T port P: failed.`` and ``error: connect_to T: unknown host (…)`` ->
  ``forward-failed`` (a granted channel whose target did not answer or does not resolve).

The target is ``destination.*``; a remote forward's listen address is kept under
``sshd.forward.listen``, where the bastion would have listened. ``sshd.forward.originator``
is what the client says a ``-L`` channel came from on its side; the "Received request from
A port N" lines name the login's own connection instead, which is ``source.*`` as in
sshd.auth.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Optional

from collectors.journald.common import fragment, port

DATASET = "sshd.forward"
TAG = "ssh-forwarded"  # the tag the snapshots collector puts on forwarded channels too

_DENIED = ", but the request was denied."
_LOCAL = re.compile(r"^refused local port forward: originator (?P<oa>\S+) port (?P<op>\d+), "
                    r"target (?P<host>\S+) port (?P<port>\d+)$")
_LOCAL_PATH = re.compile(r"^refused streamlocal port forward: originator (?P<oa>\S*) port (?P<op>-?\d+), "
                         r"target (?P<path>.+)$")
_OPEN = re.compile(r"^Received request from (?P<ca>\S+) port (?P<cp>\d+) to connect to host (?P<host>\S+) "
                   r"port (?P<port>\d+)" + re.escape(_DENIED) + "$")
_OPEN_PATH = re.compile(r"^Received request to connect to path (?P<path>.+)" + re.escape(_DENIED) + "$")
_REMOTE = re.compile(r"^Received request from (?P<ca>\S+) port (?P<cp>\d+) to remote forward"
                     r"(?: to host (?P<host>\S+) port (?P<port>\d+)| to path \"(?P<path>.*)\")?"
                     + re.escape(_DENIED) + "$")
_FAILED = re.compile(r"^(?:error: )?connect_to (?P<host>\S+?)(?: port (?P<port>\d+): failed\.|: unknown host \((?P<why>.*)\))$")


def _endpoint(host: Optional[str], p: Optional[str]) -> dict:
    """ECS source/destination parts: address always, ip when the host is an address."""
    out: dict = {}
    if host:
        out["address"] = host
        try:
            out["ip"] = str(ipaddress.ip_address(host))
        except ValueError:
            pass
    if p is not None:
        out["port"] = port(p)
    return out


def _originator(m: re.Match) -> dict:
    # A Unix-socket channel may name no originator (an empty address, a negative port).
    p = port(m["op"]) if not m["op"].startswith("-") else None
    return {k: v for k, v in (("address", m["oa"]), ("port", p)) if v not in (None, "")}


def _refused(kind: str, m: re.Match, *, target: Optional[dict] = None, listen: Optional[dict] = None,
             path: Optional[str] = None) -> dict:
    fwd: dict = {"type": kind}
    source = None
    if "oa" in m.re.groupindex:
        fwd["originator"] = _originator(m)
    if "ca" in m.re.groupindex:  # the login's own connection: what sshd.auth calls the source
        source = {"ip": m["ca"], "port": port(m["cp"])}
    if listen:
        fwd["listen"] = listen
    if path:
        fwd["path"] = path
    return fragment(DATASET, "forward-refused", category=["network"], type=["connection", "denied"],
                    outcome="failure", source=source, destination=target or None, sshd={"forward": fwd}, tags=[TAG])


def parse(message: str) -> Optional[dict]:
    """The sshd.forward fragment for one sshd message, or None when it is not about forwarding."""
    if message.startswith("refused "):
        m = _LOCAL.match(message)
        if m:
            return _refused("direct-tcpip", m, target=_endpoint(m["host"], m["port"]))
        m = _LOCAL_PATH.match(message)
        if m:
            return _refused("direct-streamlocal", m, path=m["path"])
        return None
    if message.startswith("Received request ") and message.endswith(_DENIED):
        m = _OPEN.match(message)
        if m:
            return _refused("direct-tcpip", m, target=_endpoint(m["host"], m["port"]))
        m = _REMOTE.match(message)
        if m:
            if m["path"] is not None:
                return _refused("remote-streamlocal", m, path=m["path"])
            return _refused("remote-forward", m, listen=_endpoint(m["host"], m["port"]) or None)
        m = _OPEN_PATH.match(message)
        if m:
            return _refused("direct-streamlocal", m, path=m["path"])
        return None
    if message.startswith(("connect_to ", "error: connect_to ")):
        m = _FAILED.match(message)
        if m:
            fwd = {"type": "direct-tcpip", "error": m["why"] or "connection failed"}
            return fragment(DATASET, "forward-failed", category=["network"], type=["connection"],
                            outcome="failure", destination=_endpoint(m["host"], m["port"]),
                            sshd={"forward": fwd}, tags=[TAG])
    return None
