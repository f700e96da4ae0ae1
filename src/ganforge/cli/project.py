"""``ganforge project``: GAN inversion, PULSE-style super-resolution and inpainting."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


def _default_out(source: Path, mode: str) -> Path:
    base = source if source.is_dir() else source.with_name(source.stem)
    return base / mode if source.is_dir() else Path(f"{base}-{mode}")


@app.command("project")
@user_errors
def project_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory or exported "
                                                               ".safetensors.")],
    target: Annotated[str, typer.Option(
        help="Images to project: an image file, a folder, an .npz, or a data source "
             "(digits, mnist, mnist:DIR, folder:PATH, npz:PATH), optionally with an index "
             "range: mnist:0-15 (inclusive), digits:0,5,9.")],
    space: Annotated[str, typer.Option(help="Latent space: z (any model), w or w+ "
                                            "(style-based models).")] = "z",
    steps: Annotated[int, typer.Option(help="Adam steps per target.")] = 500,
    lr: Annotated[float | None, typer.Option(
        help="Peak learning rate (default 0.05 in Z, 0.1 in W / W+).")] = None,
    labels: Annotated[str | None, typer.Option(
        help="Conditional models: one class or a comma-separated list tiled over the "
             "targets (default: the source's labels, if it has any).")] = None,
    features: Annotated[str, typer.Option(
        help="Feature loss: none (default), mnist or digits (domain classifier).")] = "none",
    feature_weight: Annotated[float, typer.Option(help="Weight of the feature loss.")] = 1.0,
    pixel_weight: Annotated[float, typer.Option(help="Weight of the pixel MSE.")] = 1.0,
    optimize_noise: Annotated[bool, typer.Option(
        "--optimize-noise", help="W / W+: also fit the per-layer noise maps.")] = False,
    restarts: Annotated[int, typer.Option(help="Starts per target; the best one wins.")] = 1,
    sphere: Annotated[bool | None, typer.Option(
        "--sphere/--no-sphere", help="Keep z on the sphere of radius sqrt(z_dim) (PULSE); "
                                     "default: on for --super-resolve in Z.")] = None,
    super_resolve: Annotated[int | None, typer.Option(
        "--super-resolve", metavar="FACTOR",
        help="Super-resolution: the targets are low-resolution images (read at the "
             "generator's size / FACTOR); find images whose area downscale matches them.")
    ] = None,
    downscale_target: Annotated[bool, typer.Option(
        "--downscale-target", help="With --super-resolve: read the targets at full size "
                                   "and downscale them by FACTOR first (a test on known "
                                   "images; the originals join the comparison grid).")
    ] = False,
    tolerance: Annotated[float, typer.Option(
        help="Super-resolution: accepted downscale MSE (images in [-1, 1]).")] = 0.01,
    mask: Annotated[Path | None, typer.Option(
        help="Inpainting: a PNG at the generator's size, white = known pixel, black = "
             "missing (the same mask for every target).")] = None,
    paste: Annotated[bool, typer.Option(
        "--paste/--no-paste", help="Inpainting: paste the known pixels back.")] = True,
    split: Annotated[str | None, typer.Option(help="MNIST split (default test).")] = None,
    batch_size: Annotated[int, typer.Option(help="Targets optimised together.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the starting latents and noise.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default RUN/projection, RUN/super-resolution or "
             "RUN/inpainting).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Find the latents whose images match the targets; write reconstructions, a
    comparison grid, the latents and the errors."""
    from ganforge.errors import ConfigError
    from ganforge.generator import load, resolve_generator_path
    from ganforge.latent.interpolate import parse_labels
    from ganforge.latent.projection import (
        downscale,
        inpaint,
        load_mask,
        load_targets,
        project,
        save_projection,
    )
    from ganforge.latent.projection import super_resolve as sr
    from ganforge.train.run import pick_device

    resolve_generator_path(source)  # clear errors before any work
    if super_resolve is not None and mask is not None:
        raise ConfigError("Use either --super-resolve or --mask, not both.")
    if downscale_target and super_resolve is None:
        raise ConfigError("--downscale-target goes with --super-resolve FACTOR.")
    if super_resolve is not None and super_resolve < 1:
        raise ConfigError(f"--super-resolve must be a positive integer, got {super_resolve}.")
    g = load(source, device=pick_device(device))
    if g.kind != "image":
        raise ConfigError("ganforge project works on image generators; this one makes "
                          "points.")
    c, h, _ = g.module.sample_shape
    if super_resolve is not None and h % super_resolve:
        raise ConfigError(f"--super-resolve {super_resolve} does not divide the generator's "
                          f"{h} px; pick a factor that does (e.g. 2 or 4).")
    low = super_resolve is not None and not downscale_target
    size = h // super_resolve if low and super_resolve else h
    targets = load_targets(target, (c, size, size), split)
    label_list = parse_labels(labels)
    if label_list is None and g.num_classes and targets.labels is not None:
        label_list = targets.labels.tolist()
        typer.echo("using the target source's labels as classes", err=True)
    common = {"space": space, "labels": label_list, "steps": steps, "lr": lr,
              "pixel_weight": pixel_weight, "feature_weight": feature_weight,
              "features": None if features == "none" else features,
              "optimize_noise": optimize_noise, "restarts": restarts,
              "batch_size": batch_size, "seed": seed, "progress": progress}
    x, original, m = targets.x, None, None
    if super_resolve is not None:
        mode = "super-resolution"
        if downscale_target:
            original, x = x, downscale(x, super_resolve)
        result = sr(g, x, super_resolve, sphere=sphere, tolerance=tolerance, **common)
    elif mask is not None:
        mode = "inpainting"
        if sphere:
            common["sphere"] = True
        m = load_mask(mask, h)
        result = inpaint(g, x, m, paste=paste, **common)
    else:
        mode = "projection"
        result = project(g, x, sphere=bool(sphere), **common)
    folder = out or _default_out(source, mode)
    written = save_projection(folder, result, x, None if m is None else m[None, None],
                              original, extra_meta={"task": mode, "target": target,
                                                    "index": targets.index,
                                                    "generator": str(g.path)})
    what = {"projection": "reconstruction", "super-resolution": "downscale",
            "inpainting": "known-pixel"}[mode]
    typer.echo(f"{mode} of {len(x)} image(s) in {space.upper()}: mean {what} MSE "
               f"{float(result.mse.mean()):.4g}, PSNR {float(result.psnr.mean()):.2f} dB "
               f"(from MSE {float(result.initial_mse.mean()):.4g} at the start)")
    if result.within_tolerance is not None:
        typer.echo(f"{int(result.within_tolerance.sum())}/{len(x)} within the tolerance "
                   f"(downscale MSE <= {tolerance:g})")
    for key in ("comparison", "latents", "errors"):
        typer.echo(f"wrote {written[key]}")
    typer.echo(f"wrote {written.get('completed', written['reconstructions'])}/")
