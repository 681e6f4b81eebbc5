"""Kill -9 campaign: ``rnnlab train`` killed at random moments, resumed each time.

Starts ``python -m rnnlab train`` on a small corpus (written here) with a checkpoint after
every update, so that kills land inside checkpoint and model writes too; kills it with
SIGKILL after a random (seeded) delay, half of the kills then waiting for the next
checkpoint write to begin (its temporary file to appear) to land inside it; checks the
run folder; resumes it with ``--resume``; and repeats. After each kill:

* the model file loads (``rnnlab.load``, ``lm.open_run``) and so does the checkpoint
  (``Trainer.load_checkpoint``), whichever of them exist yet;
* ``metrics.jsonl`` logs each training step at most once, in order;
* the next launch (a resume) exits 0 or is itself killed.

At the end a last resume runs to a fixed step and must exit 0 and end bit-identical to a
straight run of as many updates: the same parameters and the same metrics lines (times
aside). Prints "N of N kills left a run folder that resumed" and timings; exits 1 when
any check failed.

    PYTHONPATH=src python benchmarks/kill_campaign.py --kills 50 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = "the cat sat on a mat and dog ran to far hills under grey sky".split()
CONFIG = """data = {data}
hidden = 8
bptt = 16
batch = 4
eval_every = 10
eval_tokens = 200
sample_every = 0
checkpoint_every = {every}
lr_decay = 0
"""
# a constant rate: each launch gives the run another end (FOREVER, then the target), and a
# decaying rate follows the end it is given, so only a constant one ends as a straight run
FOREVER = 10**9  # --steps of the launches that are killed: they never end on their own


def write_inputs(folder: Path, every: int) -> Path:
    rng = random.Random(0)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(WORDS) for _ in range(10))
                                for _ in range(300)) + "\n", encoding="utf-8")
    config = folder / "config.toml"
    config.write_text(CONFIG.format(data=json.dumps(str(corpus)), every=every),
                      encoding="utf-8")
    return config


def launch(args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rnnlab", "train", *args, "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def metric_lines(run: Path) -> list:
    """The whole JSON lines of a run's log (a last line a kill cut short left out)."""
    path = run / "metrics.jsonl"
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines[:-1]]  # after the last "\n": cut short


def check_folder(run: Path) -> tuple[list, int]:
    """Problems found in a killed run's folder, and its checkpoint's step (0: none yet)."""
    from rnnlab import lm, load
    from rnnlab.train import Trainer

    problems, step = [], 0
    try:
        if (run / "model.rnnlab").exists():
            load(run / "model.rnnlab")
        r = lm.open_run(run)
        if (run / "checkpoint.ckpt").exists():
            cfg = r.config
            trainer = Trainer(r.net, "adam", cfg.lr, clip_norm=cfg.clip or None,
                              batch_size=cfg.batch, seed=cfg.seed, log=None, progress=False)
            step = trainer.load_checkpoint(run / "checkpoint.ckpt").step
    except ValueError as e:
        problems.append(f"does not load: {e}")
    try:
        steps = [r["step"] for r in metric_lines(run) if "loss" in r]
    except ValueError as e:
        problems.append(f"metrics.jsonl has a broken line: {e}")
    else:
        if steps != sorted(set(steps)):
            problems.append(f"metrics.jsonl logs a step twice or out of order: {steps}")
    return problems, step


def temporaries(run: Path) -> set:
    """Which files a kill caught mid-write (their temporary files are left)."""
    names = {p.name for p in run.glob(".*.tmp")} if run.exists() else set()
    return {name for name in ("checkpoint.ckpt", "model.rnnlab", "run.json", "metrics.jsonl")
            if any(n.startswith(f".{name}.") for n in names)}


def wait_for_a_checkpoint_write(run: Path, deadline: float) -> None:
    """Return while a checkpoint's temporary file exists (or at ``deadline``)."""
    while time.perf_counter() < deadline:
        try:
            if any(n.startswith(".checkpoint.ckpt.") for n in os.listdir(run)):
                return
        except FileNotFoundError:
            pass


def comparable(lines: list) -> list:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in lines]


def campaign(kills: int, seed: int, work: Path, *, max_delay: float, aim: float, every: int,
             extra_steps: int) -> int:
    from rnnlab import load

    rng = random.Random(seed)
    config = write_inputs(work, every)
    run = work / "run"
    failures, bad, delays, checks, caught, steps = [], set(), [], [], {}, []
    t0 = time.perf_counter()
    for i in range(kills):
        fresh = not (run / "run.json").exists()  # killed before the run folder was made
        args = (["--config", str(config), "--out", str(run)] if fresh
                else ["--resume", str(run)]) + ["--steps", str(FOREVER)]
        delay, aimed = rng.uniform(0, max_delay), rng.random() < aim
        p, t_launch = launch(args), time.perf_counter()
        try:
            p.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            if aimed:  # then at the first checkpoint write seen (within a second)
                wait_for_a_checkpoint_write(run, time.perf_counter() + 1.0)
                delay = time.perf_counter() - t_launch
            p.send_signal(signal.SIGKILL)
            p.wait()
            err = ""
        else:
            err = p.stderr.read().strip()
        p.stderr.close()
        if p.returncode != -signal.SIGKILL:
            failures.append(f"launch {i} exited {p.returncode} before its kill: "
                            f"{err.splitlines()[-1:]}")
            bad.add(i - 1)  # the kill before it left a folder that did not resume
            continue
        delays.append(delay)
        for name in temporaries(run):
            caught[name] = caught.get(name, 0) + 1
        t = time.perf_counter()
        problems, step = check_folder(run) if (run / "run.json").exists() else ([], 0)
        checks.append(time.perf_counter() - t)
        steps.append(step)
        failures += [f"kill {i} ({delay:.2f} s): {m}" for m in problems]
        bad.update([i] if problems else [])
    t_kills = time.perf_counter() - t0

    # the end: resume to a fixed step, then the same run straight
    target = max(steps, default=0) + extra_steps
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "rnnlab", "train", "--resume", str(run),
                        "--steps", str(target), "--no-progress"],
                       capture_output=True, text=True)
    t_final = time.perf_counter() - t
    if p.returncode != 0:
        failures.append(f"the last resume exited {p.returncode}: {p.stderr.strip()}")
    else:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        if info.get("steps") != target:
            failures.append(f"the finished run reports {info.get('steps')} steps, not {target}")
        straight = work / "straight"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rnnlab", "train", "--config", str(config),
                        "--out", str(straight), "--steps", str(target), "--no-progress"],
                       check=True, capture_output=True)
        t_straight = time.perf_counter() - t
        a, b = load(run / "model.rnnlab").params, load(straight / "model.rnnlab").params
        differ = [k for k in a if not np.array_equal(a[k], b[k])]
        if differ:
            failures.append(f"the resumed run's parameters {differ} differ from a straight "
                            f"run's")
        if comparable(metric_lines(run)) != comparable(metric_lines(straight)):
            failures.append("the resumed run's metrics.jsonl differs from a straight run's")

    if p.returncode != 0:
        bad.add(kills - 1)
    print(f"{len(delays) - len(bad)} of {len(delays)} kills left a run folder that resumed"
          + (f" ({kills - len(delays)} launches ended before their kill)"
             if len(delays) < kills else ""))
    if delays:
        print(f"kills {min(delays):.2f}-{max(delays):.2f} s after launch (median "
              f"{np.median(delays):.2f} s); caught mid-write: "
              + (", ".join(f"{n} {k}" for k, n in sorted(caught.items())) or "none")
              + f"; with no checkpoint yet: {steps.count(0)}")
        print(f"checkpoint step after the last kill: {steps[-1]}; checks after a kill: median "
              f"{1000 * np.median(checks):.0f} ms")
    print(f"campaign {t_kills:.1f} s; last resume to step {target}: {t_final:.1f} s"
          + ("" if p.returncode else f"; straight run: {t_straight:.1f} s; final parameters "
             f"and metrics {'bit-identical to' if not failures else 'checked against'} the "
             f"straight run's"))
    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=50)
    p.add_argument("--seed", type=int, default=0, help="of the kill delays")
    p.add_argument("--max-delay", type=float, default=2.5, metavar="SECONDS",
                   help="kills land uniformly in [0, SECONDS] after each launch "
                        "(start-up is about 1 s)")
    p.add_argument("--aim", type=float, default=0.5, metavar="P",
                   help="share of the kills that, after their delay, wait for a checkpoint "
                        "write to begin and land in it (default 0.5)")
    p.add_argument("--checkpoint-every", type=int, default=1, metavar="N",
                   help="updates between checkpoints (default 1)")
    p.add_argument("--extra-steps", type=int, default=20, metavar="N",
                   help="updates the last resume makes past the furthest checkpoint")
    p.add_argument("--work", metavar="DIR", help="folder for the corpus and runs "
                   "(default: a temporary one, removed)")
    a = p.parse_args(argv)
    if a.work:
        Path(a.work).mkdir(parents=True, exist_ok=True)
        return campaign(a.kills, a.seed, Path(a.work), max_delay=a.max_delay,
                        aim=a.aim, every=a.checkpoint_every, extra_steps=a.extra_steps)
    with tempfile.TemporaryDirectory() as work:
        return campaign(a.kills, a.seed, Path(work), max_delay=a.max_delay,
                        aim=a.aim, every=a.checkpoint_every, extra_steps=a.extra_steps)


if __name__ == "__main__":
    sys.exit(main())
