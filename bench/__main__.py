"""Benchmarks: `python -m bench NAME [--n N] [--json]`, `python -m bench --list`.

Each module bench/<name>.py defines `run(n: int) -> dict` and a `DEFAULT_N`; the
result always includes a baseline measured in the same run (machines are noisy).
"""

import argparse
import importlib
import json
import os
import pkgutil
import sys
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def available() -> list[str]:
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if not m.name.startswith("_") and m.name != "settings"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list or not args.name:
        print("\n".join(available()))
        return
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    module = importlib.import_module(f"bench.{args.name}")
    result = module.run(args.n or module.DEFAULT_N)
    result = {"benchmark": args.name, **result}
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
