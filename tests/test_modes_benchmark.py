"""benchmarks/modes.py keeps runs of different lengths apart (no training here)."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "modes.py"


@pytest.fixture(scope="module")
def modes():
    spec = importlib.util.spec_from_file_location("modes_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(config: str, steps: int, trial: int, modes: int) -> dict:
    return {"data": "grid", "config": config, "steps": steps, "trial": trial,
            "modes_captured": modes, "high_quality": 0.5, "reverse_kl": 0.1,
            "train_s": 1.0}


def test_a_run_at_another_length_keeps_the_earlier_rows(modes):
    rows = [_row("toy-egan", 10000, 0, 25), _row("toy-egan", 10000, 1, 25)]
    rows = modes.merge_row(rows, _row("toy-egan", 2000, 0, 20))
    assert sorted((r["steps"], r["trial"]) for r in rows) == [(2000, 0), (10000, 0), (10000, 1)]
    # the same run again replaces its own row only
    rows = modes.merge_row(rows, _row("toy-egan", 2000, 0, 22))
    assert len(rows) == 3
    assert [r["modes_captured"] for r in rows if r["steps"] == 2000] == [22]


def test_summary_never_pools_lengths(modes):
    rows = [_row("toy-egan", 10000, t, 25) for t in range(3)]
    rows += [_row("toy-egan", 2000, t, 19 + t) for t in range(2)]
    summary = modes.summarize(rows)
    assert [(s["steps"], s["trials"]) for s in summary] == [(2000, 2), (10000, 3)]
    assert summary[0]["modes"][0] == pytest.approx(19.5)
    assert summary[1]["modes"] == (25, 0.0)
    table = modes.markdown_table(summary)
    assert "| grid | toy-egan | 2,000 | 2 | 19.5 ± 0.5 |" in table
    assert "| grid | toy-egan | 10,000 | 3 | 25.0 ± 0.0 |" in table


def test_milestone_columns_name_their_length_only_when_needed(modes):
    def run(config: str, steps: int, trial: int) -> dict:
        points = [{"steps": s, "modes_captured": s // 100} for s in (1000, steps)]
        return {**_row(config, steps, trial, steps // 100), "milestones": points}

    single = modes.milestone_table([run("toy-egan", 2000, 0), run("toy-egan", 2000, 1)])
    assert single.splitlines()[0] == "| steps | grid toy-egan |"
    assert "| 2,000 | 20 / 20 |" in single
    both = modes.milestone_table([run("toy-egan", 2000, 0), run("toy-egan", 3000, 0)])
    assert both.splitlines()[0] == "| steps | grid toy-egan (to 2,000) | grid toy-egan (to 3,000) |"
    assert "| 3,000 | – | 30 |" in both


def test_resume_skips_only_runs_of_the_same_length(modes, tmp_path, monkeypatch):
    path = tmp_path / "modes.json"
    rows = [_row("toy-egan", 10000, 0, 25), _row("toy-egan", 2000, 0, 20)]
    path.write_text(json.dumps({"rows": rows}))
    scheduled: list[tuple] = []

    class NoPool:
        """A pool that records the jobs main() would train and trains none."""

        def __init__(self, *_: object) -> None:
            pass

        def __enter__(self) -> NoPool:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def imap_unordered(self, _: object, jobs: list[tuple]) -> Iterator[dict]:
            scheduled.extend(jobs)
            return iter(())

    monkeypatch.setattr(modes.mp, "get_context", lambda _: type("Ctx", (), {"Pool": NoPool}))
    for steps in ([], ["--steps", "2000"], ["--steps", "3000"]):
        monkeypatch.setattr(sys, "argv", ["modes.py", "--data", "grid", "--configs", "toy-egan",
                                          "--trial-ids", "0", "--resume", "--json", str(path),
                                          *steps])
        modes.main()
    assert [job[:4] for job in scheduled] == [("grid", "toy-egan", 0, 3000)]
    kept = json.loads(path.read_text())
    assert sorted(r["steps"] for r in kept["rows"]) == [2000, 10000]
    assert [(s["steps"], s["trials"]) for s in kept["summary"]] == [(2000, 1), (10000, 1)]


def test_tables_keep_configurations_no_longer_defined(modes):
    """Rows of a retired configuration sort last in both tables instead of failing."""
    retired = {**_row("retired-config", 2000, 0, 7),
               "milestones": [{"steps": 2000, "modes_captured": 7}]}
    current = {**_row("toy-egan", 2000, 0, 20),
               "milestones": [{"steps": 2000, "modes_captured": 20}]}
    assert [s["config"] for s in modes.summarize([retired, current])] == ["toy-egan",
                                                                         "retired-config"]
    table = modes.milestone_table([retired, current])
    assert table.splitlines()[0] == "| steps | grid toy-egan | grid retired-config |"
    assert "| 2,000 | 20 | 7 |" in table
