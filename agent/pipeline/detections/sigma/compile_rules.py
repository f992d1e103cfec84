"""The child process that parses Sigma files with pySigma: paths (JSON) in on stdin, their
compact forms (JSON, compiler.py) out on stdout. It exits when done, and pySigma's
memory with it; nothing here reaches the network (the ATT&CK data is the vendored subset).

    python -m agent.pipeline.detections.sigma.compile_rules < paths.json > compiled.json
"""

from __future__ import annotations

import json
import sys

import yaml


def main() -> int:
    from sigma.data import mitre_attack

    from agent.pipeline.detections import attack
    from agent.pipeline.detections.sigma.compiler import compile_file

    mitre_attack._load_mitre_attack_data = attack.pysigma_data  # never the network, never ~/.cache
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    paths = json.load(sys.stdin)
    json.dump([compile_file(p, loader) for p in paths], sys.stdout, separators=(",", ":"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
