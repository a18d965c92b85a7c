"""Training throughput: the toolkit's step against a pytorch/examples-style reference step.

Both run in the same process on the same model size and the same data (uint8 NHWC images
already on the device, gathered and scaled per batch), alternating, and the median of several
rounds is printed as images/s with the ratio.

Reference (pytorch/examples dcgan/main.py habits): fp32, NCHW, D ends in Sigmoid + BCELoss,
cudnn.benchmark, errD_real.backward() and errD_fake.backward() separately, plain Adam, the
G-step backward also computes D's weight gradients.
Toolkit: dcgan_viz.train.GANStep — bf16 autocast, channels_last, fused Adam, G-step gradients
for G only, whole step in a CUDA graph (on CUDA); on CPU the same step with the options given.

    python benchmarks/train_throughput.py                  # CUDA if present: batch 128 and 1024
    python benchmarks/train_throughput.py --device cpu     # CPU: batch 16
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn as nn

from dcgan_viz.models import Discriminator, Generator, ModelConfig
from dcgan_viz.train import GANStep, ImageBank, TrainConfig, build_optimizers


class ReferenceStep:
    """One iteration written the way pytorch/examples dcgan/main.py writes it."""

    def __init__(self, cfg: ModelConfig, bank: ImageBank, batch_size: int, device: torch.device) -> None:
        self.netG = Generator(cfg).to(device)
        self.netD = nn.Sequential(Discriminator(cfg), nn.Sigmoid()).to(device)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.bank, self.b, self.nz, self.device = bank, batch_size, cfg.nz, device
        self.gen = torch.Generator(device=device).manual_seed(1)

    def run(self) -> None:
        idx = torch.randint(0, self.bank.n, (self.b,), device=self.device, generator=self.gen)
        real = self.bank.batch(idx).contiguous()
        label = torch.full((self.b,), 1.0, device=self.device)
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        output = self.netD(real)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        noise = torch.rand(self.b, self.nz, 1, 1, device=self.device, generator=self.gen) * 2 - 1
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach())
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        self.optD.step()
        # (2) Update G network: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake)
        errG = self.criterion(output, label)
        errG.backward()
        self.optG.step()


class ToolkitStep:
    """The toolkit's GANStep with its inputs drawn per step (outside the graph, as Trainer does)."""

    def __init__(self, cfg: ModelConfig, bank: ImageBank, batch_size: int, device: torch.device,
                 amp: bool, channels_last: bool, graph: bool) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        G = Generator(cfg).to(device, memory_format=fmt)
        D = Discriminator(cfg).to(device, memory_format=fmt)
        opt_g, opt_d = build_optimizers(G, D, TrainConfig(), device, capturable=graph)
        self.step = GANStep(G, D, opt_g, opt_d, bank, batch_size, cfg.nz, device, amp, d_inner=D)
        self.gen = torch.Generator(device=device).manual_seed(1)
        self.bank, self.b, self.device, self.graph = bank, batch_size, device, graph

    def run(self) -> None:
        torch.randint(0, self.bank.n, (self.b,), device=self.device, generator=self.gen, out=self.step.idx)
        torch.rand(self.step.z.shape, device=self.device, generator=self.gen, out=self.step.z)
        self.step.z.mul_(2).sub_(1)
        if self.graph and self.step.graph is None:
            self.step.run_and_capture()
        else:
            self.step.run()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, n: int, device: torch.device) -> float:
    """Seconds per step over ``n`` steps (synchronised before and after)."""
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step.run()
    _sync(device)
    return (time.perf_counter() - t0) / n


def bench(cfg: ModelConfig, batch_size: int, device: torch.device, steps: int, rounds: int,
          amp: bool, channels_last: bool, graph: bool, n_images: int) -> dict:
    images = torch.randint(0, 256, (n_images, cfg.image_size, cfg.image_size, cfg.nc), dtype=torch.uint8)
    bank = ImageBank(images, device)
    ref = ReferenceStep(cfg, bank, batch_size, device)
    ours = ToolkitStep(cfg, bank, batch_size, device, amp, channels_last, graph)
    for s in (ref, ours):  # warm-up: cudnn autotuning, allocator, graph capture
        time_steps(s, 3, device)
    t_ref, t_ours = [], []
    for _ in range(rounds):  # alternate so drift (clocks, other load) hits both equally
        t_ref.append(time_steps(ref, steps, device))
        t_ours.append(time_steps(ours, steps, device))
    ref_ips = batch_size / statistics.median(t_ref)
    ours_ips = batch_size / statistics.median(t_ours)
    return {"device": str(device), "batch": batch_size, "reference_img_s": round(ref_ips, 1),
            "toolkit_img_s": round(ours_ips, 1), "ratio": round(ours_ips / ref_ips, 2),
            "amp_bf16": amp, "channels_last": channels_last, "cuda_graph": graph,
            "image_size": cfg.image_size, "ngf": cfg.ngf, "ndf": cfg.ndf}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="*", help="batch sizes (default: 128 1024 on CUDA, 16 on CPU)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="ngf = ndf")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    cfg = ModelConfig(image_size=args.image_size, ngf=args.width, ndf=args.width)
    batches = args.batch or ([128, 1024] if cuda else [16])
    results = []
    for b in batches:
        steps = args.steps or (max(20, 12800 // b) if cuda else 5)
        # CPU: bf16 autocast + channels_last (DESIGN.md section 6); CUDA: + fused Adam + CUDA graph
        r = bench(cfg, b, device, steps, args.rounds, amp=True, channels_last=True, graph=cuda,
                  n_images=max(4 * b, 4096 if cuda else 256))
        results.append(r)
        print(f"{r['device']:>6}  batch {b:5d}  reference {r['reference_img_s']:10.1f} img/s  "
              f"toolkit {r['toolkit_img_s']:10.1f} img/s  ratio {r['ratio']:.2f}x", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
