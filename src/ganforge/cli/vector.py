"""``ganforge vector``: an attribute vector (mean latent of class A minus class B), saved as
safetensors for ``ganforge interpolate --vector``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ganforge.cli.main import app, user_errors


@app.command("vector")
@user_errors
def vector_cmd(
    source: Annotated[Path, typer.Argument(metavar="RUN", help="Run directory or exported "
                                                               ".safetensors.")],
    a: Annotated[int, typer.Option("--a", help="Class the vector points to.")],
    b: Annotated[int, typer.Option("--b", help="Class the vector points away from.")],
    classifier: Annotated[str | None, typer.Option(
        help="Group generated samples by this shipped classifier's predictions (mnist or "
             "digits). Without it, conditional style-based generators are grouped by the "
             "labels they are asked for (W only).")] = None,
    space: Annotated[str | None, typer.Option(
        help="z or w (style-based); default w for style-based generators, else z.")] = None,
    n: Annotated[int, typer.Option(help="Generated samples (per class with labels).")
                 ] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the samples.")] = 0,
    truncation: Annotated[float | None, typer.Option(
        help="Psi (style-based) or the z threshold, as for `ganforge sample`.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="The vector, a .safetensors file.")
                   ] = Path("vector.safetensors"),
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Make an attribute vector from class labels or a classifier's predictions."""
    import ganforge as gf
    from ganforge.errors import ConfigError
    from ganforge.latent.interpolate import is_style_based
    from ganforge.latent.vectors import save_vector, vector_from_classifier, vector_from_labels
    from ganforge.models.base import check_truncation
    from ganforge.train.run import pick_device

    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"--out {out}: vectors are written as .safetensors files.")
    check_truncation(truncation, "w")  # a number >= 0; the model decides more
    g = gf.load(source, device=pick_device(device))
    sp = space or ("w" if is_style_based(g) else "z")
    if classifier is not None:
        vec = vector_from_classifier(g, a, b, classifier, n=n, seed=seed,
                                     space=sp,  # type: ignore[arg-type]
                                     truncation=truncation)
    else:
        vec = vector_from_labels(g, a, b, n=n, seed=seed, space=sp,  # type: ignore[arg-type]
                                 truncation=truncation)
    save_vector(out, vec)
    counts = (f", {vec.meta['n_a']} vs {vec.meta['n_b']} samples" if "n_a" in vec.meta
              else "")
    typer.echo(f"wrote {out} ({sp.upper()} vector from class {b} to {a}, norm "
               f"{vec.vector.norm().item():.4g}{counts}); apply it with `ganforge interpolate "
               f"{source} --vector {out}`", err=True)
