"""Loader fuzzing: mutated and truncated files against every rnnlab loader, counted.

    PYTHONPATH=src python benchmarks/fuzz_loaders.py --n 12000 --seed 0

``--n`` inputs in all, shared evenly among the loaders (model files, checkpoints,
vocab.json, run.json, config.toml, run folders). Each input either loads (and what it
loads is used: a forward pass, a resumed fit, an encode/decode, a sample) or must raise a
ValueError of one line; anything else (another exception, a multi-line message, an
allocation beyond a small multiple of the input's size, a hang) breaks the contract and
is printed with the first few inputs that did it. The mutator and the contract are
``tests/fuzzing.py``'s, the same code ``tests/test_fuzz_loaders.py`` runs a subset of.
Exit status 1 when any input breaks the contract.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzzing  # noqa: E402 (tests/ is put on the path just above)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10000, help="inputs in all (default 10000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=list(fuzzing.LOADERS), action="append",
                   help="fuzz only this loader (repeatable)")
    p.add_argument("--show", type=int, default=3, help="offending inputs shown per kind")
    args = p.parse_args(argv)
    names = args.only or list(fuzzing.LOADERS)
    per = -(-args.n // len(names))
    bad_total = 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        seeds = fuzzing.make_seeds(tmp / "seeds")
        print(f"{'loader':<12}{'tried':>7}{'loaded':>8}{'ValueError':>12}  other   seconds")
        offenders = collections.defaultdict(list)
        for name in names:
            t0 = time.perf_counter()
            counts = collections.Counter()
            for i, data in enumerate(fuzzing.inputs(name, seeds, per, args.seed)):
                kind, message = fuzzing.try_input(name, data, seeds, tmp)
                counts[kind] += 1
                if kind not in ("loaded", "ValueError"):
                    offenders[(name, kind)].append((i, message, data))
            other = {k: v for k, v in counts.items() if k not in ("loaded", "ValueError")}
            bad_total += sum(other.values())
            print(f"{name:<12}{per:>7}{counts['loaded']:>8}{counts['ValueError']:>12}  "
                  f"{other or '-'}  {time.perf_counter() - t0:.1f}", flush=True)
        print(f"{'all':<12}{per * len(names):>7}; contract broken by {bad_total}")
        for (name, kind), cases in offenders.items():
            print(f"\n{name}: {kind} x{len(cases)}")
            for i, message, data in cases[:args.show]:
                print(f"  input {i} (seed {args.seed}): {message[:200]!r}\n"
                      f"    first bytes {data[:120]!r}")
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
