"""``ganforge interpolate``: walk between seeded latents (Z lerp/slerp, W lerp), or along an
attribute vector; writes a PNG grid, a GIF or an MP4."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


def _floats(text: str, what: str) -> list[float]:
    from ganforge.errors import ConfigError

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values:
        raise ConfigError(f"{what} must be numbers separated by commas (e.g. -2,-1,0,1,2), "
                          f"got '{text}'.")
    return values


@app.command("interpolate")
@user_errors
def interpolate_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory or exported "
                                                               ".safetensors.")],
    seeds: Annotated[str, typer.Option(
        help="Keyframe seeds, comma-separated, ranges allowed (1,2,3 or 0-4): rows go from "
             "each seed to the next. With --pairs: start,end,start,end,... With --vector: "
             "one row per seed.")] = "0,1",
    steps: Annotated[int, typer.Option(help="Columns per row, both ends included.")] = 8,
    space: Annotated[str, typer.Option(help="z (any generator) or w (style-based).")] = "z",
    method: Annotated[str, typer.Option(help="lerp or slerp (slerp: Z only).")] = "lerp",
    labels: Annotated[str | None, typer.Option(
        help="Conditional models: one class per row, '3' or '0,1,2' (tiled; default 0).")
                      ] = None,
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="A .png grid (rows x steps), or a .gif / .mp4 animation.")
                   ] = Path("interpolation.png"),
    truncation: Annotated[float | None, typer.Option(
        help="Style-based: psi in W (e.g. 0.7); other generators: the z threshold T, as "
             "for `ganforge sample`.")] = None,
    pairs: Annotated[bool, typer.Option("--pairs", help="Seeds are independent "
                                                        "(start, end) pairs.")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="Close the path: a last row back to "
                                                      "the first seed (seamless GIF).")
                    ] = False,
    duration: Annotated[int, typer.Option(help="Milliseconds per animation frame.")] = 100,
    fps: Annotated[float | None, typer.Option(
        help="MP4 frames per second (default 1000 / --duration).")] = None,
    vector: Annotated[Path | None, typer.Option(
        help="An attribute vector (.safetensors from `ganforge vector`): columns add "
             "strength x vector to each seed's latent instead of interpolating.")] = None,
    strengths: Annotated[str | None, typer.Option(
        help="With --vector: comma-separated strengths (default: --steps values from -2 "
             "to 2, one more when --steps is even, so that 0 is a column).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Interpolate between seeded latents (lerp/slerp in Z, lerp in W) or along a vector."""
    import torch

    import ganforge as gf
    from ganforge.errors import ConfigError
    from ganforge.latent.interpolate import (
        check_mp4,
        check_space,
        interpolate,
        parse_labels,
        parse_seeds,
        require_images,
        save_interpolation,
    )
    from ganforge.latent.vectors import apply_vector, load_vector
    from ganforge.models.base import check_truncation
    from ganforge.train.run import pick_device

    suffix = out.suffix.lower()
    if suffix not in (".png", ".gif", ".mp4"):
        raise ConfigError(f"--out {out}: use a .png (grid), .gif or .mp4 (animation) file.")
    if suffix == ".mp4":
        check_mp4()
    if duration < 1:
        raise ConfigError(f"--duration must be at least 1 ms, got {duration}.")
    check_truncation(truncation, "w")  # a number >= 0; the model decides more
    label_list = parse_labels(labels)
    seed_list = parse_seeds(seeds, "--seeds", minimum=1 if vector else 2)
    vec = load_vector(vector) if vector is not None else None
    g = gf.load(source, device=pick_device(device))
    require_images(g, "ganforge interpolate")
    if vec is not None:
        # by default an odd count from -2 to 2, so the middle column is the seed itself
        values = (_floats(strengths, "--strengths") if strengths
                  else [0.0] if steps <= 1 else torch.linspace(-2, 2, steps | 1).tolist())
        images = apply_vector(g, vec, seed_list, values, labels=label_list,
                              truncation=truncation)
        what = (f"{images.shape[0]} seeds x strengths "
                f"{', '.join(f'{v:g}' for v in values)} of a {vec.space.upper()} vector")
        # every row animates at once, as independent pairs do
        save_interpolation(out, images, pairs=True, duration_ms=duration, fps=fps)
    else:
        check_space(g, space, method)
        images = interpolate(g, seed_list, steps=steps, space=space,  # type: ignore[arg-type]
                             method=method, labels=label_list,  # type: ignore[arg-type]
                             truncation=truncation, pairs=pairs, loop=loop)
        save_interpolation(out, images, pairs=pairs, loop=loop, duration_ms=duration, fps=fps)
        what = (f"{images.shape[0]} rows x {images.shape[1]} steps, {method} in "
                f"{space.upper()}")
    typer.echo(f"wrote {out} ({what})", err=True)
