"""``ganforge traverse``: image grids that sweep an InfoGAN generator's latent codes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


@app.command("traverse")
@user_errors
def traverse_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN",
                                           help="InfoGAN run directory or exported "
                                                ".safetensors.")],
    code: Annotated[list[str] | None, typer.Option(
        "--code", help="Code to sweep: cat0, cat1, ..., cont0, ... (repeatable; default: "
                       "every code).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="A .png file for one code, or a folder that receives CODE.png "
                            "per code (default: traversal.png for one code, else "
                            "traversals/).")] = None,
    steps: Annotated[int, typer.Option(help="Columns of a continuous sweep.")] = 10,
    rows: Annotated[int, typer.Option(help="Rows: independent draws of the other latents.")
                    ] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the rows' latents.")] = 0,
    span: Annotated[float, typer.Option(help="Continuous codes sweep [-SPAN, SPAN] (they "
                                             "train on [-1, 1]).")] = 2.0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Sweep latent codes: each column one code value, each row fixed other latents."""
    import ganforge as gf
    from ganforge.errors import ConfigError
    from ganforge.latent import code_traversal
    from ganforge.models.infogan import layout_of
    from ganforge.train.run import pick_device
    from ganforge.visual import save_grid

    g = gf.load(source, device=pick_device(device))
    codes = layout_of(g)
    names = code or codes.names
    for name in names:
        codes.parse(name)  # unknown names fail before anything is written
    if out is None:
        out = Path("traversal.png") if len(names) == 1 else Path("traversals")
    if out.suffix not in ("", ".png"):
        raise ConfigError(f"--out {out}: use a .png file (one code) or a folder name without "
                          "a suffix (one CODE.png per code).")
    if out.suffix == ".png" and len(names) > 1:
        raise ConfigError(f"--out {out} is one file but {len(names)} codes were asked for "
                          f"({', '.join(names)}); give a folder, or one --code.")
    targets = {name: out if out.suffix == ".png" else out / f"{name}.png" for name in names}
    for name, path in targets.items():
        grid = code_traversal(g, name, steps=steps, rows=rows, seed=seed, span=(-span, span))
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(path, grid.flatten(0, 1), nrow=grid.shape[1])
        typer.echo(f"wrote {path} ({grid.shape[0]} rows x {grid.shape[1]} values of {name})",
                   err=True)
