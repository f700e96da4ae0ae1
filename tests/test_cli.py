"""CLI behaviour: configs, overrides, bad input without tracebacks, sample and info."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from .conftest import run_cli

TINY = "model_options={g_width: 8, d_width: 8, z_dim: 16}"


def _assert_clean_error(proc, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_unknown_config_key_is_one_clear_message(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("data: digits\nlerning_rate: 0.1\n")
    proc = run_cli("train", "--config", str(cfg), "--out", str(tmp_path))
    _assert_clean_error(proc, "unknown key 'lerning_rate'", "run.yaml", "Valid keys")
    assert proc.returncode == 2
    assert not any(tmp_path.glob("0*")), "nothing is created for a bad config"


def test_unknown_model_and_impossible_size(tmp_path: Path) -> None:
    proc = run_cli("train", "--model", "stylegan9", "--out", str(tmp_path))
    _assert_clean_error(proc, "Unknown model 'stylegan9'", "dcgan", "mlp")
    proc = run_cli("train", "--model", "dcgan", "--resolution", "48", "--out", str(tmp_path))
    _assert_clean_error(proc, "48", "--resolution 32")
    proc = run_cli("train", "--model", "dcgan", "--data", "ring", "--out", str(tmp_path))
    _assert_clean_error(proc, "--model mlp")
    proc = run_cli("train", "--set", "model_options.z_dimm=3", "--out", str(tmp_path))
    _assert_clean_error(proc, "unknown key 'z_dimm'")
    proc = run_cli("train", "--device", "cuda:0", "--out", str(tmp_path))
    _assert_clean_error(proc, "--device cpu")
    proc = run_cli("train", "--batch-size", "5000", "--out", str(tmp_path))
    _assert_clean_error(proc, "lower --batch-size")
    assert not any(tmp_path.glob("0*"))


def test_debug_flag_shows_traceback(tmp_path: Path) -> None:
    proc = run_cli("--debug", "train", "--model", "nope", "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" in proc.stderr


def _bad_folder(root: Path) -> Path:
    folder = root / "imgs"
    (folder / "nested").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(40):
        arr = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
        mode = ["RGB", "L", "RGBA", "P"][i % 4]
        img = Image.fromarray(arr).convert(mode)
        img.save(folder / ("nested" if i % 2 else ".") / f"img{i}.png")
    good_jpeg = folder / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(good_jpeg)
    data = good_jpeg.read_bytes()
    (folder / "broken.jpg").write_bytes(data[: len(data) // 3])  # valid header, cut data
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_with_bad_files_errors_then_trains_with_skip_bad(tmp_path: Path) -> None:
    folder = _bad_folder(tmp_path)
    base = ["train", "--data", f"folder:{folder}", "--resolution", "16", "--steps", "3",
            "--batch-size", "8", "--out", str(tmp_path / "runs"), "--no-progress", "--set", TINY]
    proc = run_cli(*base)
    _assert_clean_error(proc, "broken.jpg", "--skip-bad")
    proc = run_cli(*base, "--skip-bad", check=True)
    run = next((tmp_path / "runs").iterdir())
    info = json.loads(run_cli("info", str(run), "--json", check=True).stdout)
    assert info["data"]["n_skipped"] == 1 and info["data"]["size"] == 41
    assert info["config"]["model_options"]["channels"] == 3  # mixed modes -> RGB
    assert (run / "generator.safetensors").exists()


def test_yaml_config_with_flag_override_and_outputs(tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({
        "data": "digits", "model": "dcgan", "resolution": 16, "steps": 999, "batch_size": 16,
        "conditional": True, "progress": False, "sample_every": 5, "checkpoint_every": 5,
        "model_options": {"g_width": 8, "d_width": 8, "z_dim": 16},
        "g_optim": {"lr": 0.001, "betas": [0.0, 0.99]}}))
    run_cli("train", "--config", str(cfg), "--steps", "10", "--out", str(tmp_path / "r"),
            check=True)
    run = next((tmp_path / "r").iterdir())
    assert run.name == "0000-digits-dcgan"
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["steps"] == 10 and resolved["g_optim"]["betas"] == [0.0, 0.99]
    assert resolved["model_options"]["num_classes"] == 10
    for name in ("metrics.jsonl", "log.txt", "run.json", "generator.safetensors",
                 "samples/step-00000005.png", "samples/step-00000010.png"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    grid = tmp_path / "grid.png"
    run_cli("sample", str(run), "--n", "20", "--seed", "7", "--labels", "3", "--out",
            str(grid), "--nrow", "5", check=True)
    assert Image.open(grid).size[0] > Image.open(grid).size[1]  # 5 columns, 4 rows
    run_cli("sample", str(run / "generator.safetensors"), "--n", "6", "--out",
            str(tmp_path / "each"), "--labels", "0,1,2", check=True)
    assert len(list((tmp_path / "each").glob("*.png"))) == 6
    npz = tmp_path / "s.npz"
    run_cli("sample", str(run), "--n", "4", "--labels", "0,1", "--out", str(npz), check=True)
    with np.load(npz) as f:
        assert f["x"].shape == (4, 1, 16, 16) and f["y"].tolist() == [0, 1, 0, 1]
    proc = run_cli("sample", str(run), "--labels", "12", "--out", str(grid))
    _assert_clean_error(proc, "0..9")

    text = run_cli("info", str(run), check=True).stdout
    assert "model: dcgan" in text and "step: 10" in text and "loss_d" in text
    info = json.loads(run_cli("info", str(run / "generator.safetensors"), "--json").stdout)
    assert info["model"] == "dcgan" and info["step"] == 10 and info["data"]["name"] == "digits"


@pytest.mark.parametrize("bad", ["--set", "--labels"])
def test_malformed_flag_values(tmp_path: Path, bad: str) -> None:
    if bad == "--set":
        proc = run_cli("train", "--set", "steps", "--out", str(tmp_path))
        _assert_clean_error(proc, "KEY=VALUE")
    else:
        proc = run_cli("sample", str(tmp_path), "--labels", "a,b")
        _assert_clean_error(proc)


def test_unwritable_output_and_bad_yaml_value_are_clean_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run_cli("train", "--steps", "1", "--out", str(blocker / "runs"))
    _assert_clean_error(proc, "Check the path")
    proc = run_cli("train", "--set", "g_optim.betas=[0.5,", "--out", str(tmp_path))
    _assert_clean_error(proc, "not valid YAML")
    proc = run_cli("sample", str(tmp_path), "--out", str(tmp_path / "x.jpg"))
    _assert_clean_error(proc, ".png")


def test_models_lists_registered_models_with_options() -> None:
    out = run_cli("models", check=True).stdout
    assert "dcgan (image)" in out and "mlp (points)" in out and "g_width = 64" in out
