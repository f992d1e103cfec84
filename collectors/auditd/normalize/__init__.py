"""Audit events -> ECS documents (datasets of ../shared/EVENTS.md), top-down:

- dispatch.py: :class:`Normalizer`, which builder makes an event's document; gap documents;
- fastpath.py: the exec shape, with caches, on the same helpers as the builders;
- syscall.py, tty.py, user.py: the builders, one module per kind of event;
- document.py: what every document shares (start, identities, process, tags, related).

Each imports only the ones below it.
"""

from __future__ import annotations

from collectors.auditd.normalize.dispatch import Normalizer

__all__ = ["Normalizer"]
