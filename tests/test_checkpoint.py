"""File safety: round trips, atomic writes, refusing pickles and damaged files."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import ganforge as gf
from ganforge.checkpoint import load_state, save_generator, save_state
from ganforge.errors import CheckpointError, NonFiniteError
from ganforge.generator import build_generator

from .conftest import TINY_DCGAN, run_cli

DCGAN_CFG = {**TINY_DCGAN, "resolution": 16, "channels": 1}


class _Evil:
    """Unpickling this creates the sentinel file: proof that code ran."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.sentinel,))


def _export(path: Path) -> None:
    torch.manual_seed(0)
    save_generator(path, build_generator("dcgan", DCGAN_CFG), "dcgan", DCGAN_CFG, {"step": 7})


def test_state_round_trip_keeps_structure_and_bits(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(1)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), betas=(0.5, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"step": 5, "opt": opt.state_dict(), "rng": g.get_state(),
             "nested": [{"a": torch.arange(3, dtype=torch.int16)}, (1.5, None, "x", True)],
             "half": torch.randn(2, 2).to(torch.bfloat16)}
    save_state(tmp_path / "s.safetensors", state)
    loaded, _ = load_state(tmp_path / "s.safetensors")
    assert loaded["step"] == 5 and loaded["nested"][1] == (1.5, None, "x", True)
    assert loaded["opt"]["param_groups"][0]["betas"] == (0.5, 0.9)
    assert set(loaded["opt"]["state"]) == {0, 1}  # int keys survive
    for k in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(loaded["opt"]["state"][0][k], opt.state_dict()["state"][0][k])
    assert torch.equal(loaded["rng"], g.get_state())
    assert torch.equal(loaded["half"], state["half"]) and loaded["half"].dtype == torch.bfloat16
    opt2 = torch.optim.Adam(model.parameters())
    opt2.load_state_dict(loaded["opt"])  # usable as an optimizer state


def test_state_is_safetensors_loadable_by_other_tools(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    save_state(tmp_path / "s.safetensors", {"w": torch.ones(2)})
    assert torch.equal(load_file(tmp_path / "s.safetensors")["w"], torch.ones(2))


def test_non_finite_tensors_are_never_saved(tmp_path: Path) -> None:
    path = tmp_path / "s.safetensors"
    save_state(path, {"w": torch.ones(3)})
    before = path.read_bytes()
    with pytest.raises(NonFiniteError, match="NaN or Inf"):
        save_state(path, {"w": torch.tensor([1.0, float("nan")])})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.safetensors"]


def test_generator_export_loads_from_registry(tmp_path: Path) -> None:
    _export(tmp_path / "g.safetensors")
    g = gf.load(tmp_path / "g.safetensors")
    assert g.model == "dcgan" and g.info["step"] == 7
    x = g.sample(5, seed=3)
    assert x.shape == (5, 1, 16, 16) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, g.sample(5, seed=3)) and not torch.equal(x, g.sample(5, seed=4))


def _evil_files(tmp_path: Path, sentinel: Path) -> list[Path]:
    raw = tmp_path / "evil.safetensors"  # a pickle hiding behind the right suffix
    raw.write_bytes(pickle.dumps(_Evil(sentinel)))
    zipped = tmp_path / "evil.pt"  # what torch.save writes: a zip holding a pickle
    torch.save({"weights": _Evil(sentinel)}, zipped)
    return [raw, zipped]


def test_pickles_are_refused_by_the_api_and_run_no_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    for path in _evil_files(tmp_path, sentinel):
        with pytest.raises(CheckpointError, match="never loads pickles"):
            gf.load(path)
        with pytest.raises(CheckpointError, match="never loads pickles"):
            load_state(path)
    assert not sentinel.exists()
    # the payload is real: plain pickle would have run it
    pickle.loads((tmp_path / "evil.safetensors").read_bytes())
    assert sentinel.exists()


def test_pickles_are_refused_by_the_cli_and_run_no_code(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    for path in _evil_files(tmp_path, sentinel):
        for args in (["sample", str(path), "--out", str(tmp_path / "x.png")],
                     ["info", str(path)]):
            proc = run_cli(*args)
            assert proc.returncode == 2, proc.stderr
            assert "never loads pickles" in proc.stderr and "Traceback" not in proc.stderr
    assert not sentinel.exists()


def test_truncated_and_corrupt_files_give_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "g.safetensors"
    _export(good)
    data = good.read_bytes()
    cases = {"trunc.safetensors": data[: len(data) // 2], "tiny.safetensors": data[:5],
             "garbage.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=r"truncated|corrupt"):
            gf.load(tmp_path / name)


def test_unknown_model_in_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={
        "format": "ganforge.generator/1", "model": "evilgan", "config": "{}"})
    with pytest.raises(CheckpointError, match=r"Unknown model 'evilgan'.*dcgan"):
        gf.load(path)
    proc = run_cli("sample", str(path), "--out", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and "evilgan" in proc.stderr and "Traceback" not in proc.stderr


def test_architecture_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.safetensors"
    _export(path)
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta["config"] = json.dumps({**DCGAN_CFG, "g_width": 16})
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError, match="does not match"):
        gf.load(path)


def test_crash_while_writing_leaves_previous_checkpoint_loadable(tmp_path: Path) -> None:
    path = tmp_path / "state.safetensors"
    script = textwrap.dedent(f"""
        import os, torch
        from ganforge.checkpoint import save_state
        save_state({str(path)!r}, {{"w": torch.full((1000,), 1.0)}})
        def crash(fd):  # die after the bytes are written, before the rename
            os._exit(9)
        os.fsync = crash
        save_state({str(path)!r}, {{"w": torch.full((1000,), 2.0)}})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    state, _ = load_state(path)
    assert torch.equal(state["w"], torch.full((1000,), 1.0))
    leftovers = [p for p in tmp_path.iterdir() if p.name != "state.safetensors"]
    assert leftovers and all(p.name.endswith(".tmp") for p in leftovers)
    # the next save cleans nothing it should not and replaces atomically
    save_state(path, {"w": torch.zeros(2)})
    assert torch.equal(load_state(path)[0]["w"], torch.zeros(2))
    assert os.stat(path).st_size > 0


def test_wrong_kinds_of_path_are_named_plainly(tmp_path: Path) -> None:
    from ganforge.summary import describe

    (tmp_path / "notes.txt").write_text("hello, this is not a model\n" * 20)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        gf.load(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="not a ganforge run directory"):
        gf.load(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        describe(tmp_path / "missing.safetensors")


def test_safetensors_whose_header_length_looks_like_a_pickle_opcode_load(tmp_path: Path) -> None:
    """A header of 0x280 bytes starts the file with 80 02, the pickle protocol-2 opcode."""
    path = tmp_path / "w.bin"
    for pad in range(0, 700):
        save_file({"w": torch.ones(2)}, path, metadata={"pad": "x" * pad})
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    else:
        pytest.skip("could not build such a header")
    from ganforge.checkpoint import read_safetensors

    tensors, meta = read_safetensors(path)
    assert torch.equal(tensors["w"], torch.ones(2)) and len(meta["pad"]) == pad
