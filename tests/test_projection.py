"""GAN inversion (ganforge.latent.projection): Z / W / W+ projection of images the
generator made, PULSE-style super-resolution, inpainting, input errors and the
``ganforge project`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, safe_open
from torch import nn

from ganforge.apps.latent_search import best_of_restarts
from ganforge.checkpoint import save_generator
from ganforge.errors import ConfigError, DataError
from ganforge.generator import build_generator
from ganforge.latent.projection import (
    downscale,
    inpaint,
    load_targets,
    parse_range,
    project,
    psnr,
    super_resolve,
)

pytestmark = pytest.mark.usefixtures("one_thread")

DCGAN = {"resolution": 16, "g_width": 8, "d_width": 8, "z_dim": 16, "embed_dim": 8}
STYLE = {"resolution": 16, "channel_base": 256, "channel_max": 16, "z_dim": 16, "w_dim": 16,
         "mapping_layers": 2}


def _varied(G: nn.Module) -> nn.Module:
    """Wider weights than DCGAN's N(0, 0.02) init, so that an untrained generator's images
    differ visibly from latent to latent (an untrained DCGAN's are nearly constant)."""
    for m in G.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, std=1.5 / m.weight[0].numel() ** 0.5)
    return G.eval()


def _dcgan(**options: Any) -> nn.Module:
    torch.manual_seed(0)
    return _varied(build_generator("dcgan", {**DCGAN, **options}))


def _style() -> nn.Module:
    torch.manual_seed(0)
    return build_generator("stylegan2", STYLE).eval()


def _made_by(G: nn.Module, n: int = 4, seed: int = 5, labels: torch.Tensor | None = None
             ) -> torch.Tensor:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return G(z, labels).clamp(-1, 1)


# ---------------------------------------------------------------- projection


def test_z_projection_recovers_an_image_the_generator_made() -> None:
    G = _dcgan()
    x = _made_by(G)
    r = project(G, x, steps=150, restarts=2, progress=False)
    random_latent = project(G, x, steps=0, progress=False, seed=9)
    assert r.latents.shape == (4, 16) and r.reconstruction.shape == x.shape
    assert r.history.shape == (150, 4) and r.space == "z"
    assert (r.mse < 1e-3).all()
    assert (r.mse < 0.01 * random_latent.mse).all() and (r.mse < r.initial_mse).all()
    assert torch.allclose(r.psnr, psnr(r.mse)) and (r.psnr > 36).all()
    # the reported error is the error of the returned latents
    with torch.no_grad():
        again = G(r.latents).clamp(-1, 1)
    assert torch.allclose((again - x).square().flatten(1).mean(1), r.mse, atol=1e-6)
    # seeded: the same settings give the same result
    a = project(G, x[:2], steps=10, progress=False, seed=3)
    b = project(G, x[:2], steps=10, progress=False, seed=3)
    assert torch.equal(a.latents, b.latents) and torch.equal(a.history, b.history)
    # batching does not change the result (independent samples, same starting latents)
    c = project(G, x[:2], steps=10, progress=False, seed=3, batch_size=1)
    assert torch.allclose(a.mse[0], c.mse[0], atol=1e-6)
    s = r.summary()
    assert s["n"] == 4 and s["mean_mse"] == pytest.approx(float(r.mse.mean()))
    json.dumps(s)


def test_w_and_w_plus_projection_of_a_tiny_stylegan2() -> None:
    G = _style()
    x = _made_by(G, n=3)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    random_latent = project(G, x, steps=0, progress=False, seed=9)
    w = project(G, x, space="w", steps=150, progress=False)
    wp = project(G, x, space="w+", steps=150, progress=False)
    assert w.latents.shape == (3, 16) and wp.latents.shape == (3, G.num_ws, 16)
    assert w.meta["w_start"] == "mean of mapped samples"  # untrained: w_avg never tracked
    for r in (w, wp):
        assert (r.mse < 0.2 * r.initial_mse).all()
        assert float(r.mse.mean()) < 0.1 * float(random_latent.mse.mean())
    assert float(wp.mse.mean()) < 0.02
    # noise maps optimised per target; the model's own buffers are left as they were
    n = project(G, x, space="w", steps=20, optimize_noise=True, progress=False)
    assert n.noise is not None and len(n.noise) == 5
    assert n.noise["synthesis.blocks.b16.conv1.noise"].shape == (3, 1, 16, 16)
    assert all(abs(float(v.std()) - 1) < 0.05 for v in n.noise.values())  # renormalised
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(not p.requires_grad or p.grad is None for p in G.parameters())


def test_feature_loss_and_conditional_labels() -> None:
    G = _dcgan(num_classes=3)
    y = torch.tensor([0, 1, 2])
    x = _made_by(G, n=3, labels=y)
    r = project(G, x, labels=y, steps=60, features="digits", feature_weight=0.1,
                progress=False)
    assert (r.mse < r.initial_mse).all() and torch.equal(r.labels, y)
    assert r.meta["features"] == "digits"
    one = project(G, x[:2], labels=1, steps=0, progress=False)
    assert one.labels.tolist() == [1, 1]


# ---------------------------------------------------------------- super-resolution


def test_super_resolution_matches_the_low_res_input() -> None:
    G = _dcgan()
    high = _made_by(G, seed=11)
    low = downscale(high, 4)
    assert low.shape == (4, 1, 4, 4)
    assert torch.allclose(low[0, 0, 0, 0], high[0, 0, :4, :4].mean())
    r = super_resolve(G, low, 4, steps=150, tolerance=1e-3, progress=False)
    assert r.reconstruction.shape == high.shape and r.meta["factor"] == 4
    assert torch.allclose((downscale(r.reconstruction, 4) - low).square().flatten(1).mean(1),
                          r.mse, atol=1e-6)
    assert r.within_tolerance is not None and bool(r.within_tolerance.all())
    assert (r.mse < 1e-3).all() and (r.mse < 0.1 * r.initial_mse).all()
    # PULSE's constraint: z stays on the sphere of radius sqrt(z_dim)
    assert torch.allclose(r.latents.norm(dim=1), torch.full((4,), 4.0), atol=1e-4)
    assert r.summary()["n_within_tolerance"] == 4
    with pytest.raises(DataError, match=r"needs \(1, 8, 8\)"):
        super_resolve(G, low, 2, steps=1, progress=False)
    with pytest.raises(ConfigError, match="does not divide"):
        super_resolve(G, low, 3, steps=1, progress=False)
    with pytest.raises(DataError, match="multiple of the factor"):
        downscale(high, 3)


# ---------------------------------------------------------------- inpainting


def test_inpainting_matches_the_known_pixels() -> None:
    G = _dcgan()
    x = _made_by(G, seed=13)
    mask = torch.ones(16, 16)
    mask[4:12, 4:12] = 0
    hole = torch.rand_like(x) * 2 - 1  # the missing pixels' values must not matter
    damaged = mask * x + (1 - mask) * hole
    r = inpaint(G, damaged, mask, steps=150, progress=False)
    assert r.completed is not None and r.meta["matched"] == "known pixels"
    known = mask.bool().expand_as(x)
    assert torch.equal(r.completed[known], damaged[known])  # pasted back
    assert torch.equal(r.completed[~known], r.reconstruction[~known])
    assert (r.mse < 1e-3).all() and (r.mse < 0.05 * r.initial_mse).all()
    err = ((r.reconstruction - x).square() * mask).flatten(1).sum(1) / mask.sum()
    assert torch.allclose(err, r.mse, atol=1e-6)
    assert float((r.reconstruction - x)[~known].square().mean()) < \
        float((hole - x)[~known].square().mean())  # the hole is filled with the image
    plain = inpaint(G, damaged, mask[None, None].expand(4, 1, 16, 16), steps=0, paste=False,
                    progress=False)
    assert torch.equal(plain.completed, plain.reconstruction)


# ---------------------------------------------------------------- errors


def test_bad_inputs_are_clear_errors() -> None:
    G = _dcgan()
    x = _made_by(G, n=2)
    with pytest.raises(ConfigError, match=r"Space 'w' needs a style-based generator.*'"
                                          r"DCGANGenerator' has only z"):
        project(G, x, space="w")
    with pytest.raises(ConfigError, match="Unknown latent space"):
        project(G, x, space="s")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"target has shape \(1, 8, 8\).*are \(1, 16, 16\)"):
        project(G, torch.zeros(2, 1, 8, 8))
    with pytest.raises(DataError, match=r"uint8.*x / 127.5 - 1"):
        project(G, torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(DataError, match=r"outside \[-1, 1\]"):
        project(G, x * 255)
    with pytest.raises(DataError, match=r"mask has shape \(8, 8\)"):
        inpaint(G, x, torch.ones(8, 8))
    with pytest.raises(DataError, match="no pixel as known"):
        inpaint(G, x, torch.zeros(16, 16))
    with pytest.raises(ConfigError, match=r"class-conditional.*give the class"):
        project(_dcgan(num_classes=3), x)
    with pytest.raises(ConfigError, match="unconditional; drop the labels"):
        project(G, x, labels=[0, 1])
    with pytest.raises(ConfigError, match=r"Labels must lie in 0\.\.2"):
        project(_dcgan(num_classes=3), x, labels=[0, 5])
    with pytest.raises(ConfigError, match="optimize_noise needs a style-based"):
        project(G, x, optimize_noise=True)
    with pytest.raises(ConfigError, match="Unknown features"):
        project(G, x, features="vgg")
    with pytest.raises(ConfigError, match="sphere"):
        project(_style(), _made_by(_style(), n=1), space="w", sphere=True)


def test_targets_from_sources_ranges_and_files(tmp_path: Path) -> None:
    assert parse_range("0-3,7", 10) == [0, 1, 2, 3, 7]
    with pytest.raises(DataError, match="out of range"):
        parse_range("5-12", 10)
    with pytest.raises(ConfigError, match="backwards"):
        parse_range("5-2", 10)
    t = load_targets("digits:0-4", (1, 16, 16))
    assert t.x.shape == (5, 1, 16, 16) and t.index == [0, 1, 2, 3, 4]
    assert t.labels is not None and t.labels.tolist() == [0, 1, 2, 3, 4]
    assert float(t.x.min()) >= -1 and float(t.x.max()) <= 1
    png = tmp_path / "one.png"
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(png)
    one = load_targets(str(png), (1, 16, 16))
    assert one.x.shape == (1, 1, 16, 16) and one.labels is None
    assert torch.allclose(one.x, torch.full_like(one.x, 200 / 127.5 - 1))
    with pytest.raises(DataError, match="points or rows"):
        load_targets("ring", (1, 16, 16))


def test_best_of_restarts_picks_the_lowest_loss_per_input() -> None:
    loss = torch.tensor([3.0, 1.0, 2.0, 0.5, 4.0, 5.0])  # 3 restarts x 2 inputs
    z = torch.arange(6.0)[:, None].repeat(1, 2)
    best, (zb,) = best_of_restarts(loss, 2, z)
    assert best.tolist() == [2.0, 0.5] and zb[:, 0].tolist() == [2.0, 3.0]


# ---------------------------------------------------------------- the command


def _cli(*args: str) -> Any:
    """Run a ganforge command in this process."""
    from typer.testing import CliRunner

    import ganforge.cli.project  # noqa: F401  (registers the command)
    from ganforge.cli.main import app

    return CliRunner().invoke(app, list(args))


def test_cli_project_super_resolve_and_inpaint(tmp_path: Path) -> None:
    G = _dcgan()
    gen = tmp_path / "g.safetensors"
    save_generator(gen, G, "dcgan", DCGAN)
    x = _made_by(G, n=3, seed=21)
    npz = tmp_path / "targets.npz"
    np.savez(npz, x=((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy())

    res = _cli("project", str(gen), "--target", f"{npz}:0-1", "--steps", "40", "--out",
               str(tmp_path / "p"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert "projection of 2 image(s) in Z: mean reconstruction MSE" in res.output
    out = tmp_path / "p"
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == \
        ["00000.png", "00001.png"]
    assert Image.open(out / "comparison.png").size == (152, 152)  # 2 x 2 tiles, upscaled
    lat = load_file(out / "latents.safetensors")
    assert lat["latents"].shape == (2, 16)
    with safe_open(out / "latents.safetensors", "pt") as f:
        meta = json.loads(f.metadata()["meta"])
    assert meta["index"] == [0, 1] and meta["space"] == "z"
    assert meta["columns"] == ["target", "reconstruction"]
    errors = json.loads((out / "errors.json").read_text())
    assert len(errors["mse"]) == 2 and errors["mean_mse"] < errors["mean_initial_mse"]

    res = _cli("project", str(gen), "--target", str(npz), "--steps", "40",
               "--super-resolve", "4", "--downscale-target", "--out", str(tmp_path / "sr"),
               "--no-progress")
    assert res.exit_code == 0, res.output
    assert "within the tolerance" in res.output
    errors = json.loads((tmp_path / "sr" / "errors.json").read_text())
    assert errors["meta"]["columns"] == ["original", "target", "reconstruction",
                                         "reconstruction downscaled"]
    assert errors["tolerance"] == 0.01 and len(errors["within_tolerance"]) == 3

    mask = np.full((16, 16), 255, np.uint8)
    mask[:, 8:] = 0
    Image.fromarray(mask).save(tmp_path / "mask.png")
    res = _cli("project", str(gen), "--target", f"{npz}:2", "--steps", "20", "--mask",
               str(tmp_path / "mask.png"), "--out", str(tmp_path / "in"), "--no-progress")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "in" / "completed" / "00000.png").is_file()

    Image.fromarray(mask[:8, :8]).save(tmp_path / "small.png")
    res = _cli("project", str(gen), "--target", str(npz), "--mask",
               str(tmp_path / "small.png"), "--out", str(tmp_path / "bad"))
    assert res.exit_code == 2 and "draw the mask at that size" in res.output
    res = _cli("project", str(gen), "--target", str(npz), "--space", "w+")
    assert res.exit_code == 2 and "style-based" in res.output


def test_points_generators_are_refused() -> None:
    g = build_generator("mlp", {"data_dim": 2, "z_dim": 4})
    with pytest.raises(ConfigError, match="makes points"):
        project(g, torch.zeros(3, 2), steps=1)
