"""The truncation trick: exact truncated-normal latents, their effect on samples, the
``--truncation`` flag of ``ganforge sample`` and the ``ganforge truncation`` sweep."""

from __future__ import annotations

import importlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ganforge as gf
from ganforge.errors import ConfigError
from ganforge.generator import LoadedGenerator, build_generator
from ganforge.metrics.truncation_sweep import (
    format_table,
    parse_thresholds,
    truncation_sweep,
)
from ganforge.models.base import check_truncation, truncate_latents

from .conftest import TINY_DCGAN, run_cli, tiny_image_config

pytestmark = pytest.mark.usefixtures("one_thread")

evaluate_mod = importlib.import_module("ganforge.metrics.evaluate")  # the module, not gf.evaluate
INFOGAN = {"resolution": 16, "g_width": 8, "d_width": 8, "noise_dim": 16, "q_width": 16,
           "categorical": [10, 3], "continuous": 2}


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _cli(*args: str) -> Any:
    """Run a ganforge command in this process (errors without the cost of a new one)."""
    from typer.testing import CliRunner

    import ganforge.cli.truncation  # noqa: F401  (registers the command)
    from ganforge.cli.main import app

    return CliRunner().invoke(app, list(args))


def _truncnorm_var(t: float) -> float:
    pdf = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return 1 - 2 * t * pdf / math.erf(t / math.sqrt(2))


def _dcgan(seed: int = 0) -> LoadedGenerator:
    torch.manual_seed(seed)
    cfg = {"resolution": 16, **TINY_DCGAN}
    return LoadedGenerator(build_generator("dcgan", cfg), "dcgan", cfg, {})


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    return gf.train(tiny_image_config(tmp_path_factory.mktemp("runs"), steps=20)).dir


# ---------------------------------------------------------------- the latents
def test_truncated_draws_respect_the_bound_and_are_reproducible() -> None:
    G = build_generator("mlp", {})
    plain = G.sample_latents(64, generator=_rng(0))
    assert torch.equal(plain, torch.randn(64, G.z_dim, generator=_rng(0)))  # default as before
    for t in (0.1, 0.3, 0.5, 1.0, 2.0):  # 0.1 and 0.3 round up in float32
        z = G.sample_latents(4000, generator=_rng(1), truncation=t)
        assert z.dtype == torch.float32 and z.shape == (4000, G.z_dim)
        assert z.abs().max().item() <= t
        assert z.abs().max().item() > 0.99 * t  # the whole interval is used
        assert torch.equal(z, G.sample_latents(4000, generator=_rng(1), truncation=t))
        assert not torch.equal(z, G.sample_latents(4000, generator=_rng(2), truncation=t))
    # one pass over the same random numbers: each coordinate shrinks as t falls
    zs = [G.sample_latents(500, generator=_rng(3), truncation=t) for t in (None, 2, 1, 0.5)]
    for wide, narrow in itertools.pairwise(zs):
        assert (narrow.abs() <= wide.abs()).all()
        assert torch.equal(narrow.sign(), wide.sign())
    huge = truncate_latents(zs[0], 40.0)  # no effective truncation: the normal draw back
    assert torch.allclose(huge, zs[0], atol=1e-5)


def test_marginal_matches_the_truncated_normal() -> None:
    z = torch.randn(100_000, generator=_rng(0))
    for t in (0.25, 0.75, 1.5):
        x = truncate_latents(z, t).double()
        assert abs(x.mean().item()) < 0.01 * t
        assert x.var().item() == pytest.approx(_truncnorm_var(t), rel=0.02)
        # Kolmogorov-Smirnov distance to the exact truncated-normal CDF
        xs = x.sort().values
        lo, mass = torch.special.ndtr(torch.tensor(-t, dtype=torch.float64)), math.erf(
            t / math.sqrt(2))
        cdf = (torch.special.ndtr(xs) - lo) / mass
        ecdf = torch.arange(1, len(xs) + 1, dtype=torch.float64) / len(xs)
        assert (cdf - ecdf).abs().max().item() < 0.006  # 1.36/sqrt(n) = 0.0043 at 5%


def test_truncation_values_are_validated() -> None:
    for bad in (0, -1, -0.5, math.nan, math.inf, "x", True):
        with pytest.raises(ConfigError, match="positive number"):
            check_truncation(bad)  # type: ignore[arg-type]
    G = build_generator("mlp", {})
    with pytest.raises(ConfigError, match="positive number"):
        G.sample_latents(4, generator=_rng(0), truncation=0)
    with pytest.raises(ConfigError, match="positive number"):
        _dcgan().sample(4, seed=0, truncation=-1)
    assert check_truncation(1) == 1.0 and check_truncation(None) is None


def test_smaller_thresholds_give_less_varied_samples() -> None:
    g = _dcgan()
    spread = []
    for t in (None, 2.0, 1.0, 0.5, 0.25):
        x = g.sample(64, seed=0, truncation=t).flatten(1)
        spread.append(torch.pdist(x).mean().item())
    assert all(a > b for a, b in itertools.pairwise(spread)), spread
    assert spread[-1] < 0.5 * spread[0], spread
    points = LoadedGenerator(build_generator("mlp", {}), "mlp", {}, {})  # points models too
    assert points.sample(32, seed=0, truncation=0.5).shape == (32, 2)


def test_infogan_truncates_the_noise_only() -> None:
    G = build_generator("infogan", INFOGAN)
    plain = G.sample_latents(500, generator=_rng(0))
    assert torch.equal(plain, G.codes.sample(500, generator=_rng(0)))  # default as before
    cut = G.sample_latents(500, generator=_rng(0), truncation=0.5)
    noise, cats, cont = G.split_latents(cut)
    noise0, cats0, cont0 = G.split_latents(plain)
    assert noise.abs().max() <= 0.5 and noise0.abs().max() > 2
    assert all(torch.equal(a, b) for a, b in zip(cats, cats0, strict=True))
    assert torch.equal(cont, cont0)  # codes keep their prior and their values


def test_a_module_without_truncation_support_is_a_clear_error() -> None:
    class Old(torch.nn.Module):
        z_dim, num_classes, kind, sample_shape = 2, None, "points", (2,)

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Linear(2, 2)

        def sample_latents(self, n: int, generator: torch.Generator | None = None
                           ) -> torch.Tensor:
            return torch.randn(n, 2, generator=generator)

        def forward(self, z: torch.Tensor, labels: Any = None) -> torch.Tensor:
            return self.w(z)

    g = LoadedGenerator(Old(), "old", {}, {})  # type: ignore[arg-type]
    assert g.sample(3, seed=0).shape == (3, 2)
    with pytest.raises(ConfigError, match="does not support truncation"):
        g.sample(3, seed=0, truncation=1.0)


# ---------------------------------------------------------------- sample command
def test_sample_cli_truncation(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.npz"
    proc = run_cli("sample", str(run), "--n", "8", "--seed", "3", "--truncation", "0.5",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    expected = gf.load(run).sample(8, seed=3, truncation=0.5)
    assert np.array_equal(np.load(out)["x"], expected.numpy())
    assert not np.array_equal(np.load(out)["x"], gf.load(run).sample(8, seed=3).numpy())
    for bad in ("0", "-1", "-0.5"):
        res = _cli("sample", str(run), "--truncation", bad, "--out", str(tmp_path / "y.png"))
        assert res.exit_code == 2 and res.stderr.startswith("error: Truncation threshold")
        assert "positive number" in res.stderr and f"got {float(bad)}" in res.stderr
        assert not (tmp_path / "y.png").exists()


# ---------------------------------------------------------------- the sweep
def test_parse_thresholds() -> None:
    assert parse_thresholds("none, 2,1.5 ,0.5") == [None, 2.0, 1.5, 0.5]
    assert parse_thresholds([None, 1, "0.25"]) == [None, 1.0, 0.25]
    for bad, match in (("1,x", "not a number"), ("1,0", "positive number"),
                       ("1,1.0", "listed twice"), (" , ", "No truncation threshold")):
        with pytest.raises(ConfigError, match=match):
            parse_thresholds(bad)


def test_sweep_extracts_real_features_once(run: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    calls: list[int] = []
    real_cached = evaluate_mod.cached_features

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real_cached(*args, **kwargs)

    monkeypatch.setattr(evaluate_mod, "cached_features", counting)
    with pytest.raises(ConfigError, match="needs class labels on the generated side"):
        truncation_sweep(run, "none,1", metrics="fid,cas", n=100, features="digits")
    assert not calls  # refused before any extraction
    result = truncation_sweep(run, "none,1,0.5", metrics="fid,pr", n=120, features="digits")
    assert len(calls) == 1
    rows = result["rows"]
    assert [r["truncation"] for r in rows] == [None, 1.0, 0.5]
    assert {r["fake"]["seed"] for r in rows} == {0}
    assert [r["fake"]["truncation"] for r in rows] == [None, 1.0, 0.5]
    fid_none = evaluate_mod.evaluate(run, metrics="fid", n=120, features="digits")
    assert rows[0]["metrics"]["fid"] == pytest.approx(fid_none["metrics"]["fid"], rel=1e-6)
    one = evaluate_mod.evaluate(run, metrics="fid", n=120, features="digits", truncation=1)
    assert one["meta"]["truncation"] == 1.0 and one["meta"]["fake"]["truncation"] == 1.0
    assert rows[1]["metrics"]["fid"] == pytest.approx(one["metrics"]["fid"], rel=1e-6)
    assert result["meta"]["thresholds"] == [None, 1.0, 0.5]
    assert result["meta"]["feature_provenance"]["sha256"]
    assert len(format_table(result).splitlines()) == 4


def test_sweep_cli_writes_json_table_markdown_and_grid(run: Path, tmp_path: Path) -> None:
    out, md, grid = tmp_path / "sweep.json", tmp_path / "table.md", tmp_path / "grid.png"
    proc = run_cli("truncation", str(run), "--thresholds", "none,1,0.5", "--n", "100",
                   "--features", "digits", "--out", str(out), "--markdown", str(md),
                   "--grid", str(grid), "--grid-n", "4", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert [r["truncation"] for r in result["rows"]] == [None, 1.0, 0.5]
    for row in result["rows"]:  # auto metrics for digits features: fid, is, pr
        assert {"fid", "is_mean", "precision", "recall"} <= set(row["metrics"])
    assert result["meta"]["metrics"] == ["fid", "is", "pr"]
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["truncation",
                                                                            "FID"])
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["none", "1", "0.5"]
    table = md.read_text().splitlines()
    assert "| truncation | FID | IS | precision | recall |" in table
    assert sum(line.startswith("| 0.5 |") for line in table) == 1
    assert grid.stat().st_size > 0
    bad = _cli("truncation", str(run), "--thresholds", "none,0", "--no-progress")
    assert bad.exit_code == 2 and "positive number" in bad.stderr
    bad = _cli("truncation", str(run), "--metrics", "cas", "--no-progress")
    assert bad.exit_code == 2 and "needs class labels on the generated side" in bad.stderr


def test_sweep_on_a_conditional_generator_scores_cas(tmp_path: Path) -> None:
    run = gf.train(tiny_image_config(tmp_path, steps=20, conditional=True)).dir
    options = evaluate_mod.MetricOptions(cas_epochs=1)
    result = truncation_sweep(run, "none,0.5", n=100, features="digits", options=options)
    assert result["meta"]["metrics"] == ["fid", "is", "pr", "cas"]  # auto: labels -> cas
    for row in result["rows"]:
        assert 0.0 <= row["metrics"]["cas"] <= 1.0
    assert "CAS" in format_table(result).splitlines()[0]


def test_eval_cli_truncation_is_recorded_and_kept_apart(run: Path) -> None:
    import ganforge.cli.evaluation  # noqa: F401  (registers the command)

    common = ("eval", str(run), "--metrics", "fid", "--n", "100", "--features", "digits",
              "--no-progress")
    plain, cut = _cli(*common), _cli(*common, "--truncation", "0.5")
    assert plain.exit_code == 0 and cut.exit_code == 0, (plain.output, cut.output)
    files = sorted((run / "eval").glob("eval-*-digits-fid*.json"),
                   key=lambda f: f.name.endswith("-trunc0.5.json"))
    assert [f.name.endswith("-trunc0.5.json") for f in files] == [False, True]
    meta = json.loads(files[1].read_text())["meta"]
    assert meta["truncation"] == 0.5
    fids = [json.loads(f.read_text())["metrics"]["fid"] for f in files]
    assert fids[0] != fids[1]


def test_style_based_generators_read_truncation_as_psi() -> None:
    """For stylegan2 the same argument is psi in W: 0 is valid (the average image, one
    for every seed), and the sweep's default values are psi values, not z thresholds."""
    from ganforge.metrics.truncation_sweep import default_thresholds

    torch.manual_seed(0)
    cfg = {"resolution": 16, "z_dim": 8, "w_dim": 8, "mapping_layers": 2}
    g = LoadedGenerator(build_generator("stylegan2", cfg), "stylegan2", cfg, {})
    a, b = g.sample(2, seed=0, truncation=0), g.sample(2, seed=1, truncation=0)
    assert torch.equal(a[0], b[1])
    assert not torch.equal(g.sample(2, seed=0), g.sample(2, seed=1))
    assert parse_thresholds(default_thresholds("w"), "w")[-1] == 0.0
    with pytest.raises(ConfigError, match="positive number"):
        parse_thresholds("0", "z")
    with pytest.raises(ConfigError, match=">= 0"):
        g.sample(2, seed=0, truncation=-0.5)
