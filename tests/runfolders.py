"""Small run folders of every kind ``rnnlab report`` reads, built once per test process.

A language model (on a short text of its own, so no corpus loads), a ``--task`` run
(digits, a few hundred sequences), a ``demo memory`` folder (recall, two lags) and a sweep
folder (a ``results.csv`` of arbitrary columns). Each takes seconds.
"""

from pathlib import Path

_BUILT: dict = {}

TEXT = ("To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
        "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of "
        "troubles\nAnd by opposing end them. To die: to sleep;\n") * 60

SWEEP_CSV = ('trial,cell,hidden,lr,val_loss,note\n'
             '0,lstm,32,0.003,1.91,"first, with a comma"\n'
             '1,gru,64,0.001,1.72,ünïcode\n'
             '2,elman,32,0.01,2.40,\n')


def lm_run(root: Path, **config) -> Path:
    from rnnlab import lm

    text = root / "text.txt"
    if not text.exists():
        text.write_text(TEXT, encoding="utf-8")
    cfg = lm.LMConfig.from_dict({
        "data": str(text), "hidden": 16, "bptt": 16, "batch": 4, "steps": 40,
        "time_budget": 0, "eval_every": 20, "eval_tokens": 400, "sample_every": 0,
        "checkpoint_every": 1000, **config})
    return lm.train(cfg, out=root / "lm", progress=False, echo=lambda *a, **k: None)


def task_run(root: Path) -> Path:
    from rnnlab import apps

    return apps.train_task("digits", hidden=8, epochs=2, max_train=200, max_test=100,
                           out=root / "task", progress=False, echo=lambda *a, **k: None)


def memory_run(root: Path) -> Path:
    from rnnlab import demo

    cfg = demo.MemoryConfig.quick(tasks=("recall",), lags=(2, 5))
    demo.memory(cfg, out=root / "memory", echo=None)
    return root / "memory"


def sweep_run(root: Path) -> Path:
    d = root / "sweep"
    d.mkdir(exist_ok=True)
    (d / "results.csv").write_text(SWEEP_CSV, encoding="utf-8")
    return d


def runs(tmp_path_factory) -> dict:
    """``{"lm", "task", "memory", "sweep"}`` -> folder, each with its report written."""
    if not _BUILT:
        import pytest

        from rnnlab.report import write_report

        pytest.importorskip("sklearn", reason="the digits task needs scikit-learn "
                                              "(rnnlab[data])")
        root = tmp_path_factory.mktemp("report-runs")
        folders = {"lm": lm_run(root), "task": task_run(root), "memory": memory_run(root),
                   "sweep": sweep_run(root)}
        for d in folders.values():
            write_report(d)
        _BUILT.update(folders)
    return dict(_BUILT)
