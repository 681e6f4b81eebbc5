"""benchmarks/ucr.py end to end on the smallest bundled set: one seed, 3 epochs."""

import importlib.util
import json
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "ucr.py"
_SPEC = importlib.util.spec_from_file_location("benchmark_ucr", _PATH)
ucr_benchmark = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(ucr_benchmark)


def test_quick_run_writes_its_table_and_runs(tmp_path, capsys):
    out = tmp_path / "ucr.json"
    assert ucr_benchmark.main(["--quick", "--sets", "UnitTest,ItalyPowerDemand", "--seeds",
                               "0,1", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["quick"] and record["seeds"] == [0, 1]
    assert [r["set"] for r in record["sets"]] == ["UnitTest", "ItalyPowerDemand"]
    assert len(record["runs"]) == 4 and all(r["epochs"] == 3 for r in record["runs"])
    italy = record["sets"][1]
    accs = [r["accuracy"] for r in record["runs"] if r["set"] == "ItalyPowerDemand"]
    assert italy["accuracy_mean"] == pytest.approx(sum(accs) / 2)
    assert italy["n_test"] == 1029 and italy["published"]["FCN"]["mean"] == 0.9629
    printed = capsys.readouterr().out
    assert "| ItalyPowerDemand | 67 / 1029 | 24 × 1 |" in printed and "0.963 ± 0.001" in printed
    assert "QUICK RUN" in printed and record["environment"]["cpu"] in printed


def test_unknown_set_is_refused(capsys):
    with pytest.raises(SystemExit):
        ucr_benchmark.main(["--sets", "NoSuchSet", "--quick"])
    assert "unknown set(s) ['NoSuchSet']" in capsys.readouterr().err
