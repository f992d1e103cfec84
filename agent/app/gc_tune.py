"""The cyclic garbage collector's settings for a long pass over events (`agentd replay`,
`agentd run`).

Events are plain dicts and lists freed by reference counting; what lives long (modules,
the config, compiled rules, caches) is loaded before the first event. With the default
thresholds the collector still walks all of it over and over: about 10% of replay's CPU on
the exec storm, and of the live collector thread's. So the long-lived objects are frozen
out of every later collection and collections are made rarer (the counts only bound how
much cyclic garbage can pile up between two, which event handling hardly makes).
"""

from __future__ import annotations

import gc

GEN0 = 20_000


def quiet_gc():
    """Freeze what is alive now, make collections rarer; returns the function that undoes
    both (replay's ``run`` is also called in-process; the daemon thaws before a reload so
    the old configuration's objects can be collected)."""
    before = gc.get_threshold()
    gc.collect()  # what is garbage now must not be frozen: it would never be collected
    gc.freeze()
    gc.set_threshold(GEN0, 20, 100)

    def restore() -> None:
        gc.set_threshold(*before)
        gc.unfreeze()

    return restore
