"""Training options against collapse, each off by default (the default is the paper's recipe).

All of them change only what the discriminator sees or the targets it is trained towards:

- instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017): Gaussian noise of std
  ``sigma(t)`` added to every image D sees, real and generated, in the D-step and the G-step;
  ``sigma`` falls linearly from ``instance_noise`` at step 0 to 0 at ``instance_noise_steps``;
- one-sided label smoothing (Salimans et al. 2016): D's target for real images is ``1 - s``;
- dequantisation: real images get uniform noise of ``dequantize`` uint8 levels, centred, so a
  flat-shaded real image is no longer separable from a generated one by its exact pixel levels;
- a separate discriminator learning rate (TTUR, Heusel et al. 2017): ``lr_d``;
- differentiable augmentation (DiffAugment, Zhao et al. 2020): the same random translation /
  cutout / colour transform family applied to every image D sees, real and generated, with the
  gradient flowing through it to G.

Randomness: every draw is a uniform or normal tensor written into a static buffer before the
step (``RemedyBuffers.fill``), from a generator seeded by (seed, step, rank). The step itself is
then a pure function of its buffers, which keeps runs exact on resume and CUDA-graph friendly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUGMENTS = ("translation", "cutout", "color")
AUG_PARAMS = 7  # uniforms per image for one augmentation call: 2 translation, 2 cutout, 3 colour
AUG_CALLS = 3  # D-step real, D-step fake, G-step fake: each gets its own draw
TRANSLATION_RATIO = 0.125  # DiffAugment's default: shifts of up to 1/8 of the image
CUTOUT_RATIO = 0.5  # DiffAugment's default: a square of half the image side
LEVEL = 2.0 / 255.0  # one uint8 level in model space [-1, 1]


def parse_augment(policy: str) -> tuple[str, ...]:
    """"translation,cutout" -> ("translation", "cutout"); "" -> (); unknown names: ValueError."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [n for n in names if n not in AUGMENTS]
    if bad:
        raise ValueError(f"unknown augmentation {bad[0]!r}; choose from {', '.join(AUGMENTS)} (comma-separated)")
    if len(set(names)) != len(names):
        raise ValueError(f"augmentation {policy!r} names a transform twice")
    return names


def noise_sigma(start: float, steps: int, step: int) -> float:
    """Instance-noise std at ``step``: ``start`` at step 0, linearly down to 0 at ``steps``."""
    if start <= 0 or steps <= 0:
        return 0.0
    return start * max(0.0, 1.0 - step / steps)


def translate(x: torch.Tensor, u: torch.Tensor, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    """Shift each image of x (B, C, H, W) by whole pixels, zero-filled.

    ``u`` (B, 2) uniform in [0, 1) picks the (dy, dx) shift in [-r, r] with r = round(ratio * side)."""
    b, _, h, w = x.shape
    ry, rx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (u[:, 0] * (2 * ry + 1)).floor().long().clamp_(0, 2 * ry) - ry  # (B,)
    dx = (u[:, 1] * (2 * rx + 1)).floor().long().clamp_(0, 2 * rx) - rx
    padded = torch.nn.functional.pad(x, (rx, rx, ry, ry))  # (B, C, H + 2ry, W + 2rx)
    iy = torch.arange(h, device=x.device)[None, :] + ry - dy[:, None]  # (B, H) rows to read
    ix = torch.arange(w, device=x.device)[None, :] + rx - dx[:, None]  # (B, W)
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, iy[:, :, None], ix[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, u: torch.Tensor, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    """Zero one square of side ratio * side in each image of x (B, C, H, W); ``u`` (B, 2) in
    [0, 1) places its centre anywhere in the image (the square is clipped at the borders)."""
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (u[:, 0] * (h + (1 - h % 2))).floor().long()  # (B,) centre row
    cx = (u[:, 1] * (w + (1 - w % 2))).floor().long()
    yy = torch.arange(h, device=x.device)[None, :] - cy[:, None] + ch // 2  # (B, H)
    xx = torch.arange(w, device=x.device)[None, :] - cx[:, None] + cw // 2
    inside = ((yy >= 0) & (yy < ch))[:, :, None] & ((xx >= 0) & (xx < cw))[:, None, :]  # (B, H, W)
    return x * (~inside).to(x.dtype)[:, None]


def color(x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """DiffAugment's colour transform of x (B, C, H, W) in [-1, 1]; ``u`` (B, 3) in [0, 1):
    brightness + (u0 - 0.5), saturation x (2 u1), contrast x (u2 + 0.5)."""
    x = x + (u[:, 0] - 0.5)[:, None, None, None]
    mean_c = x.mean(dim=1, keepdim=True)
    x = (x - mean_c) * (u[:, 1] * 2)[:, None, None, None] + mean_c
    mean_all = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean_all) * (u[:, 2] + 0.5)[:, None, None, None] + mean_all


def augment(x: torch.Tensor, u: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply ``policy`` (in DiffAugment's order colour, translation, cutout) to x (B, C, H, W)
    with the uniforms u (B, AUG_PARAMS); differentiable in x."""
    if "color" in policy:
        x = color(x, u[:, 4:7])
    if "translation" in policy:
        x = translate(x, u[:, 0:2])
    if "cutout" in policy:
        x = cutout(x, u[:, 2:4])
    return x


@dataclass(frozen=True)
class Remedies:
    """The remedy settings of a run (from TrainConfig); ``any`` is False for the paper recipe."""

    label_smoothing: float = 0.0
    instance_noise: float = 0.0
    instance_noise_steps: int = 0
    dequantize: float = 0.0
    augment: tuple[str, ...] = ()

    @property
    def noisy(self) -> bool:
        return self.instance_noise > 0

    @property
    def any(self) -> bool:
        return bool(self.label_smoothing or self.noisy or self.dequantize or self.augment)


class RemedyBuffers:
    """Static per-step random inputs of the remedies that are on (shapes for a batch of B images
    (B, C, H, W)): ``noise`` (3, B, C, H, W) normal, for D-real, D-fake, G-fake; ``sigma`` () the
    noise std; ``deq`` (B, C, H, W) uniform; ``aug`` (3, B, AUG_PARAMS) uniform."""

    def __init__(self, remedies: Remedies, batch: int, shape: tuple[int, int, int], device: torch.device) -> None:
        self.remedies = remedies
        self.sigma = torch.zeros((), device=device)
        self.noise = torch.zeros(AUG_CALLS, batch, *shape, device=device) if remedies.noisy else None
        self.deq = torch.zeros(batch, *shape, device=device) if remedies.dequantize else None
        self.aug = torch.zeros(AUG_CALLS, batch, AUG_PARAMS, device=device) if remedies.augment else None

    def fill(self, gen: torch.Generator, step: int) -> None:
        """Draw this step's inputs from ``gen`` (seeded by the caller from (seed, step, rank))."""
        r = self.remedies
        if self.noise is not None:
            self.sigma.fill_(noise_sigma(r.instance_noise, r.instance_noise_steps, step))
            torch.randn(self.noise.shape, generator=gen, device=self.noise.device, out=self.noise)
        if self.deq is not None:
            torch.rand(self.deq.shape, generator=gen, device=self.deq.device, out=self.deq)
        if self.aug is not None:
            torch.rand(self.aug.shape, generator=gen, device=self.aug.device, out=self.aug)

    def real(self, x: torch.Tensor) -> torch.Tensor:
        """Real images as D sees them in the D-step (dequantised, augmented, noised)."""
        if self.deq is not None:
            x = x + (self.deq - 0.5) * (self.remedies.dequantize * LEVEL)
        return self._seen(x, 0)

    def fake(self, x: torch.Tensor, call: int) -> torch.Tensor:
        """Generated images as D sees them; ``call`` 1 in the D-step, 2 in the G-step."""
        return self._seen(x, call)

    def _seen(self, x: torch.Tensor, call: int) -> torch.Tensor:
        if self.aug is not None:
            x = augment(x, self.aug[call], self.remedies.augment)
        if self.noise is not None:
            x = x + self.noise[call] * self.sigma
        return x
