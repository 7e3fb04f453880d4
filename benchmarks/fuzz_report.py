"""Long fuzz run of the readers: thousands of mutated and crafted files, one table.

Each case is read in a worker process with a 2 GiB address-space cap and a timeout
(see ``tests/io/fuzzing.py``, shared with the CI test ``tests/io/test_fuzz.py``); the
table counts the outcomes per kind of case. Target: zero in every column other than
"correct" and "clean error".

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/fuzz_report.py [--scale 25] [--workers 2]
        [--timeout 30] [--show 20]

``--scale`` multiplies the random cases (truncations, byte flips, header dimensions,
random bytes); 25 gives about 3,000 cases. Files are made in a temporary folder from
``../shared/data`` and deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "io"))

import fuzzing  # noqa: E402 - the harness lives with the tests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=25)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--show", type=int, default=20, help="problem cases to list")
    parser.add_argument("--data", type=Path, default=REPO / ".." / "shared" / "data")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hrtem_fuzz_") as tmp:
        cases = fuzzing.build_cases(args.data, Path(tmp), scale=args.scale, seed=args.seed)
        built = time.perf_counter() - t0
        results = fuzzing.run_cases(cases, workers=args.workers, timeout=args.timeout)
        counts, text = fuzzing.table(results)
        print(
            f"{len(cases)} cases (built in {built:.0f} s, run in "
            f"{time.perf_counter() - t0 - built:.0f} s)\n"
        )
        print(text)
        bad = [
            (c, r)
            for c, r in results
            if r["outcome"] not in ("correct", "clean error") or r.get("slow_hook")
        ]
        if bad:
            print(f"\nfirst {min(args.show, len(bad))} of {len(bad)} problem cases:")
            for c, r in bad[: args.show]:
                rel = Path(c.path).relative_to(tmp)
                hook = f" hook {r['hook_s']:.2f} s" if r.get("slow_hook") else ""
                print(f"  [{c.kind}] {rel}: {r['outcome']}{hook}: {r['detail'][:200]}")
    total = counts["total"]
    return int(any(total[o] for o in fuzzing.OUTCOMES if o not in ("correct", "clean error")))


if __name__ == "__main__":
    raise SystemExit(main())
