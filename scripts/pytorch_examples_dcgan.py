"""A self-written, faithful stand-in for pytorch/examples ``dcgan/main.py`` (for `dcgan-viz import`).

It builds the same two nets as that script (``netG.main`` / ``netD.main`` ``nn.Sequential``s,
bias-free convolutions, D ending in a Sigmoid), trains them the same way (BCELoss, Adam lr 2e-4,
beta1 0.5, z ~ N(0, 1) of shape (B, nz, 1, 1), real label 1 / fake label 0, D step then G step)
and saves what that script saves: ``netG_epoch_N.pth`` / ``netD_epoch_N.pth`` written with
``torch.save(net.state_dict(), ...)``. It exists to show that models trained outside the toolkit
import exactly; it is not used by the toolkit itself.

Differences from the original, all outside the nets: it reads Fashion-MNIST from the IDX files
(no torchvision), can stop after ``--max-steps`` and also saves after the last step.

    OMP_NUM_THREADS=1 python scripts/pytorch_examples_dcgan.py --outf out/pte --ngf 16 --ndf 16 \
        --max-steps 400
    dcgan-viz import out/pte/netG_epoch_0.pth --netD out/pte/netD_epoch_0.pth --out out/pte-imported
"""

from __future__ import annotations

import argparse
import gzip
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FASHION = Path("/usr/share/datasets/fashion-mnist")


def weights_init(m: nn.Module) -> None:
    """Custom weights initialization called on netG and netD (as in the original)."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    """z (B, nz, 1, 1) -> image (B, nc, 64, 64) in [-1, 1]."""

    def __init__(self, nz: int, ngf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            # input is Z, going into a convolution
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            # state size. (ngf*8) x 4 x 4
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            # state size. (ngf*4) x 8 x 8
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size. (nc) x 64 x 64
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    """image (B, nc, 64, 64) -> probability of "real" (B,)."""

    def __init__(self, ndf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            # input is (nc) x 64 x 64
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 32 x 32
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*4) x 8 x 8
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*8) x 4 x 4
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1, 1).squeeze(1)


def read_idx_images(path: Path) -> np.ndarray:
    """uint8 (N, 28, 28) from a gzipped IDX3 file."""
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    if int.from_bytes(raw[:4], "big") != 2051:
        raise SystemExit(f"{path}: not an IDX3 image file")
    n, h, w = (int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w)


def fashion_tensor(root: Path, size: int) -> torch.Tensor:
    """Fashion-MNIST train images as float (N, 1, size, size) in [-1, 1] (Resize + Normalize(0.5, 0.5))."""
    images = torch.from_numpy(read_idx_images(root / "train-images-idx3-ubyte.gz").copy()).float().div(255)
    images = F.interpolate(images[:, None], size=(size, size), mode="bilinear", align_corners=False,
                           antialias=True)
    return images.clamp(0, 1).sub(0.5).div(0.5)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataroot", type=Path, default=FASHION, help="directory of the Fashion-MNIST IDX files")
    p.add_argument("--outf", type=Path, required=True, help="folder to output model checkpoints")
    p.add_argument("--batchSize", type=int, default=64)
    p.add_argument("--nz", type=int, default=100)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--niter", type=int, default=25, help="number of epochs")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many iterations")
    p.add_argument("--lr", type=float, default=0.0002)
    p.add_argument("--beta1", type=float, default=0.5)
    p.add_argument("--manualSeed", type=int, default=999)
    args = p.parse_args()

    random.seed(args.manualSeed)
    torch.manual_seed(args.manualSeed)
    args.outf.mkdir(parents=True, exist_ok=True)
    nc, image_size = 1, 64
    data = fashion_tensor(args.dataroot, image_size)

    netG = Generator(args.nz, args.ngf, nc)
    netG.apply(weights_init)
    netD = Discriminator(args.ndf, nc)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    fixed_noise = torch.randn(64, args.nz, 1, 1)
    real_label, fake_label = 1.0, 0.0
    optimizerD = torch.optim.Adam(netD.parameters(), lr=args.lr, betas=(args.beta1, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=args.lr, betas=(args.beta1, 0.999))

    steps = 0
    n_batches = len(data) // args.batchSize
    epoch = 0
    for epoch in range(args.niter):
        order = torch.randperm(len(data))
        for i in range(n_batches):
            real = data[order[i * args.batchSize : (i + 1) * args.batchSize]]
            b = real.size(0)
            ############################
            # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
            ###########################
            netD.zero_grad()
            label = torch.full((b,), real_label)
            output = netD(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(b, args.nz, 1, 1)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()
            ############################
            # (2) Update G network: maximize log(D(G(z)))
            ###########################
            netG.zero_grad()
            label.fill_(real_label)  # fake labels are real for generator cost
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            steps += 1
            if i % 50 == 0:
                print(f"[{epoch}/{args.niter}][{i}/{n_batches}] Loss_D: {errD.item():.4f} Loss_G: {errG.item():.4f} "
                      f"D(x): {D_x:.4f} D(G(z)): {D_G_z1:.4f} / {D_G_z2:.4f}", flush=True)
            if args.max_steps is not None and steps >= args.max_steps:
                break
        # do checkpointing
        torch.save(netG.state_dict(), args.outf / f"netG_epoch_{epoch}.pth")
        torch.save(netD.state_dict(), args.outf / f"netD_epoch_{epoch}.pth")
        if args.max_steps is not None and steps >= args.max_steps:
            break
    with torch.no_grad():
        netG.eval()
        torch.save({"z": fixed_noise, "images": netG(fixed_noise)}, args.outf / "fixed_noise_eval.pt")
    print(f"done: {steps} steps, saved {args.outf}/netG_epoch_{epoch}.pth and netD_epoch_{epoch}.pth", flush=True)


if __name__ == "__main__":
    main()
