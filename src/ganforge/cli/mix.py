"""``ganforge mix``: a style-mixing grid of a style-based generator (StyleGAN Fig. 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


@app.command("mix")
@user_errors
def mix_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN", help="Style-based (stylegan2) run "
                                                               "directory or .safetensors.")],
    sources: Annotated[str, typer.Option(
        help="Seeds of the top row (styles are copied from these), e.g. 1,2,3 or 1-5.")
                       ] = "1,2,3,4,5",
    destinations: Annotated[str, typer.Option(
        help="Seeds of the left column (the images that receive the styles).")] = "6,7,8",
    band: Annotated[str, typer.Option(
        help="Copied styles: coarse (4-8 px), middle (16-32 px), fine (64 px and up), "
             "LO-HI ws indices (e.g. 0-3) or LO-HIpx resolutions (e.g. 8-16px).")
                    ] = "coarse",
    labels: Annotated[str | None, typer.Option(
        help="Conditional models: classes for sources and destinations alike ('3' or "
             "'0,1,2', tiled; default 0).")] = None,
    truncation: Annotated[float | None, typer.Option(
        help="Truncation psi in W for all images (e.g. 0.7).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The grid, a .png file.")
                   ] = Path("mixing.png"),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Style mixing: destination images with one band of styles taken from each source."""
    import ganforge as gf
    from ganforge.errors import ConfigError
    from ganforge.latent.interpolate import parse_labels, parse_seeds
    from ganforge.latent.mixing import save_mixing_grid, style_mix
    from ganforge.models.base import check_truncation
    from ganforge.train.run import pick_device

    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: a style-mixing grid is written as a .png file.")
    check_truncation(truncation, "w")  # style mixing: psi in W
    src = parse_seeds(sources, "--sources")
    dst = parse_seeds(destinations, "--destinations")
    label_list = parse_labels(labels)
    g = gf.load(source, device=pick_device(device))
    result = style_mix(g, src, dst, band, source_labels=label_list,
                       destination_labels=label_list, truncation=truncation)
    save_mixing_grid(out, result)
    typer.echo(f"wrote {out} ({len(dst)} destinations x {len(src)} sources, band {band}: "
               f"ws {result.layers})", err=True)
