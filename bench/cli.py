"""CLI start-up time: how long `pmhub --help` and light verbs take as a user runs them.

Each command runs as its own process (the installed entry point's import path), best of
several runs; target: `pmhub --help` under 0.3 s. BENCH_SMALL=1 runs fewer repeats.
Last line: one JSON object of the figures.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SMALL = os.environ.get("BENCH_SMALL") == "1"
REPEATS = 5 if SMALL else 15
COMMANDS = {
    "help": ["--help"],
    "version": ["--version"],
    "cohort_help": ["cohort", "--help"],
    "sites_list": ["sites", "list"],
    "bare_python": None,  # the interpreter alone: the floor no CLI can go under
}


def time_once(args: list[str] | None, env: dict[str, str]) -> float:
    code = "pass" if args is None else f"from pmhub.cli import main; main({args!r})"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PMHUB_HOME": home}
        figures: dict[str, float] = {}
        print(f"{'command':<14} {'best s':>8} {'median s':>9}")
        for name, args in COMMANDS.items():
            runs = [time_once(args, env) for _ in range(REPEATS)]
            figures[f"{name}_s"] = round(min(runs), 3)
            figures[f"{name}_median_s"] = round(statistics.median(runs), 3)
            print(f"{name:<14} {min(runs):>8.3f} {statistics.median(runs):>9.3f}")
    figures["help_target_s"] = 0.3
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
