"""What collectors and shippers have in common: a name, a type and declared options."""

from __future__ import annotations

from typing import Any, ClassVar

from agent.base.events import HostInfo
from agent.base.options import Option

# Keys every component section has; they are handled by the config loader, not
# declared by each component.
COMMON_OPTIONS: dict = {
    "type": Option("str", None, "which component this section configures", required=True),
    "enabled": Option("bool", "true", "set to false to keep the section but not run it"),
}


# Keys every [shipper:NAME] section has besides COMMON_OPTIONS.
SHIPPER_OPTIONS: dict = {
    "events": Option("list", "", "which events this shipper gets: alerts, sessions, or event.dataset names "
                     "(wildcards allowed, e.g. sshd.*, agentd.alert); empty = all (webhook: alerts)"),
}


class RunContext:
    """What a running component may know of the agent: host identity and [agent] settings."""

    def __init__(self, agent: dict, host: Any = None):
        self.agent = agent
        self.host = host or HostInfo.local(agent.get("host_name") or "")

    @property
    def state_dir(self) -> str:
        return self.agent["state_dir"]


class Component:
    """Base of collectors and shippers.

    Subclasses set ``type_name`` (the ``type =`` value in agentd.conf) and
    ``options`` (name -> Option). The loader validates the section against
    ``options`` and hands the typed values to ``__init__`` as ``conf``.
    """

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[dict] = {}

    def __init__(self, name: str, conf: dict, context: Any = None):
        self.name = name
        self.conf = conf
        self.context = context

    @classmethod
    def validate_conf(cls, conf: dict) -> list:
        """Cross-option checks once each option parsed; returns [(key, message)].

        A classmethod so validation never opens files or sockets.
        """
        return []
