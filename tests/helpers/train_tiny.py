"""Train a tiny model in a subprocess (used by the kill/resume and DDP tests).

    python tests/helpers/train_tiny.py RUN_DIR STEPS [--resume | --resume-if-any] [--dump FILE]
"""

from __future__ import annotations

import os
import sys

import torch
from safetensors.torch import save_file

from dcgan_viz.data.spec import DataSpec
from dcgan_viz.models import ModelConfig
from dcgan_viz.train import Trainer, TrainConfig


def tiny_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(128, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def main() -> None:
    run_dir, steps = sys.argv[1], int(sys.argv[2])
    resume = "--resume" in sys.argv
    if "--resume-if-any" in sys.argv:  # fault injection: resume when a checkpoint survived, else start again
        from dcgan_viz.checkpoint import run_checkpoints

        resume = bool(run_checkpoints(run_dir))
    torch.set_num_threads(1)
    model = ModelConfig(image_size=32, nz=16, ngf=8, ndf=8)
    cfg = TrainConfig(max_steps=steps, batch_size=16, checkpoint_every=int(os.environ.get("CKPT_EVERY", "10")),
                      keep_checkpoints=100, progress=False, device="cpu")
    trainer = Trainer(model, cfg, DataSpec(source="random", size=32, count=128), tiny_images(), run_dir, resume=resume)
    trainer.run()
    if "--dump" in sys.argv:
        out = sys.argv[sys.argv.index("--dump") + 1].replace("RANK", str(trainer.rank))
        save_file({f"G.{k}": v.contiguous() for k, v in trainer.G.state_dict().items()}
                  | {f"D.{k}": v.contiguous() for k, v in trainer.D.state_dict().items()}, out)


if __name__ == "__main__":
    main()
