"""Derive ecs_fields.tsv (the test data of tests/unit/test_ecs_fields.py) from ECS's flat field list.

    .venv/bin/python tests/unit/data/ecs/derive.py PATH/TO/ecs_flat.yml > tests/unit/data/ecs/ecs_fields.tsv

One line per ECS field: name, type, "array" when ECS says the field holds a list
(``normalize: [array]``), and the allowed values (comma-separated) where ECS lists them.
"""

from __future__ import annotations

import sys

import yaml


def main(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        fields = yaml.safe_load(f)
    print("# ECS 9.4.0 fields (generated/ecs/ecs_flat.yml at tag v9.4.0, Apache-2.0, see LICENSE.txt)")
    print("# name\ttype\tarray\tallowed values")
    for name in sorted(fields):
        f = fields[name]
        allowed = ",".join(a["name"] for a in f.get("allowed_values") or ())
        array = "array" if "array" in (f.get("normalize") or ()) else ""
        print(f"{name}\t{f['type']}\t{array}\t{allowed}")


if __name__ == "__main__":
    main(sys.argv[1])
