"""`dcgan-viz import`: pytorch/examples DCGAN weights (netG / netD state dicts) -> a toolkit checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        netG: Path = typer.Argument(..., help="Generator state dict saved by pytorch/examples dcgan/main.py "
                                    "(torch.save(netG.state_dict(), 'netG_epoch_N.pth'))."),
        out: Path = typer.Option(..., help="New checkpoint directory (must not exist)."),
        netD: Optional[Path] = typer.Option(None, "--netD", "--netd", help="Discriminator state dict (optional)."),
        data: Optional[str] = typer.Option(None, help="The training data, if known (e.g. fashion-mnist); recorded "
                                           "as given. Without it, analyses that need real images ask for --data."),
    ) -> None:
        """Import a DCGAN trained with pytorch/examples (state dicts read with torch's restricted loader)."""
        from dcgan_viz.cli import _run

        def go() -> None:
            from dcgan_viz.checkpoint import read_meta
            from dcgan_viz.importing import import_checkpoint

            path = import_checkpoint(netG, out, netD, data=data)
            meta = read_meta(path)
            m, check = meta["model"], meta["imported_from"]["check"]
            d_text = (f", D max |diff| {check['discriminator_max_abs_diff']:.3g} (sigmoid of the logit)"
                      if "discriminator_max_abs_diff" in check else ", no discriminator")
            typer.echo(f"imported {netG.name}{' + ' + netD.name if netD else ''}: {m['image_size']}x{m['image_size']}, "
                       f"nz {m['nz']}, ngf {m['ngf']}, ndf {m['ndf']}, nc {m['nc']}, prior N(0, 1)")
            typer.echo(f"check vs the source layout on {check['n']} latents: G max |diff| "
                       f"{check['generator_max_abs_diff']:.3g}{d_text}")
            typer.echo(f"checkpoint: {path}")
        _run(go)
