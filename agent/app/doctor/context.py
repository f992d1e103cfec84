"""What the checks share: the agent's config and facts read once per doctor run."""

from __future__ import annotations

from typing import Any, Callable, Optional

from agent.app import defaultconf
from agent.base.config import Config, ConfigError, load_config, parse_config_text


class Context:
    def __init__(self, config_path: str, sshd_config: Optional[str] = None, online: bool = True,
                 cfg: Optional[Config] = None):
        self.config_path = config_path
        self.sshd_config = sshd_config  # --sshd-config: check this file instead of the running sshd's
        self.online = online            # False: no shipper health checks (network)
        self.config_errors: list = []
        try:
            self.cfg: Config = cfg or load_config(config_path)
        except ConfigError as e:
            # The host checks still run, on the default config's settings.
            self.config_errors = list(e.lines)
            self.cfg = parse_config_text(defaultconf.render(), config_path)
        self._memo: dict = {}

    def memo(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def collector_option(self, type_name: str, option: str, default: Any) -> Any:
        for c in self.cfg.enabled("collector"):
            if c.type_name == type_name:
                return c.conf.get(option, default)
        return default

    def has_collector(self, type_name: str) -> bool:
        return any(c.type_name == type_name for c in self.cfg.enabled("collector"))
