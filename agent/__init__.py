"""agentd: a jump-server (bastion) monitoring agent."""

__version__ = "0.1.0"
