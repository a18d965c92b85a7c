"""Bring your own model: a generator that is not a DCGAN (linear layer + upsampling + convolutions),
wrapped with ``wrap_generator``, goes through the analyses that read and edit layers.

The generator has a planted unit: unit 3 of ``block2`` is strongly on in the top-left quadrant only
and is the only unit ``to_img`` paints brightly, so dropping it must remove the bright top-left
square; dropping control unit 5 must not."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dcgan_viz import latents, wrap_generator
from dcgan_viz.analysis import ablation as A
from dcgan_viz.analysis.filters import filter_responses, generator_feature_maps, random_discriminator
from dcgan_viz.analysis.forgetting import with_without
from dcgan_viz.analysis.inversion import invert
from dcgan_viz.analysis.latent import interpolate, walk
from dcgan_viz.instrument import HookedNet, edit
from dcgan_viz.sampling import generate

NZ, PLANT, CONTROL = 8, 3, 5
BOX = (0, 0, 16, 16)  # x0, y0, x1, y1 of the planted pattern (top-left quadrant of 32x32)


class Plant(nn.Module):
    """Adds a fixed spatial pattern to one channel (the planted unit)."""

    def __init__(self, channels: int, unit: int, size: int) -> None:
        super().__init__()
        pattern = torch.zeros(1, channels, size, size)
        pattern[0, unit, : size // 2, : size // 2] = 4.0
        pattern[0, unit, size // 2 :, :] = -4.0
        pattern[0, unit, :, size // 2 :] = -4.0
        self.register_buffer("pattern", pattern)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pattern


class UserGenerator(nn.Module):
    """z (B, 8) -> Linear -> (8, 4, 4) -> [upsample + conv] x 3 -> (1, 32, 32) in [-1, 1]. Not a DCGAN."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = nn.Linear(NZ, 8 * 4 * 4)
        self.block1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), Plant(8, PLANT, 16),
                                    nn.ReLU())
        self.block3 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
        self.to_img = nn.Conv2d(8, 1, 1)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.2)
                    m.bias.zero_()
            conv3 = self.block3[1]
            conv3.weight[:, PLANT] = 0.0
            conv3.weight[0, PLANT, 1, 1] = 1.0  # block3 unit 0 carries the planted unit forward
            self.to_img.weight.zero_()
            self.to_img.weight[0, 0] = 1.5
            self.to_img.weight[0, 1:] = 0.05
            self.to_img.bias.fill_(-0.5)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(z)).view(-1, 8, 4, 4)
        return torch.tanh(self.to_img(self.block3(self.block2(self.block1(h)))))


class UserDiscriminator(nn.Module):
    """image (B, 1, 32, 32) -> logit (B,): conv + pooling + linear head. Not a DCGAN either."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.c1 = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.LeakyReLU(0.2))
        self.c2 = nn.Sequential(nn.Conv2d(6, 8, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.c2(self.c1(x)).mean(dim=(2, 3))).flatten()


@pytest.fixture
def bundle():
    G = UserGenerator()
    return wrap_generator(G, nz=NZ, layers={"block1": G.block1, "block2": "block2", "block3": G.block3},
                          D=UserDiscriminator(), D_layers={"c1": "c1", "c2": "c2"}, device="cpu")


def _box_mean(x: torch.Tensor) -> torch.Tensor:
    x0, y0, x1, y1 = BOX
    return x[:, 0, y0:y1, x0:x1].mean()


def _no_hooks(net: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._backward_hooks for m in net.modules())


def test_wrapped_interface(bundle) -> None:
    G = bundle.G
    assert bundle.config.image_size == 32 and bundle.config.nc == 1 and bundle.config.nz == NZ
    assert G.layer_names == ("block1", "block2", "block3", "output")
    assert G.layer_channels()["block2"] == 8
    with pytest.raises(ValueError, match="not \\(B, C, h, w\\)"):  # fc outputs (B, 128): not a feature map
        HookedNet(G.net, {"fc": G.net.fc}, lambda b: torch.zeros(b, NZ)).layer_channels()
    z = latents(bundle.config, 0, range(6))
    assert torch.equal(z, latents(bundle.config, 0, [0, 1, 2, 3, 4, 5]))  # named (seed, index), stable
    with torch.no_grad():
        feats = G.features(z, ["block2", "output"])
        assert feats["block2"].shape == (6, 8, 16, 16)
        torch.testing.assert_close(feats["output"], G(z))
        torch.testing.assert_close(G.forward_from("block2", feats["block2"]), G(z))  # run from a layer
    assert _no_hooks(G)
    images = generate(bundle, 0, 4)
    assert images.shape == (4, 32, 32, 1) and images.dtype == torch.uint8
    maps = generator_feature_maps(G, z[0])
    assert set(maps) == set(G.layer_names) and maps["block1"].shape == (8, 32, 32)


def test_planted_unit_removal_and_control(bundle) -> None:
    G = bundle.G
    z = latents(bundle.config, 0, 64)
    with torch.no_grad():
        before = G(z)
        with A.ablate(G, {"block2": [PLANT]}):
            planted = G(z)
        with A.ablate(G, {"block2": [CONTROL]}):
            control = G(z)
        after_exit = G(z)
    assert _box_mean(before) > 0.5  # the pattern is there
    assert _box_mean(before) - _box_mean(planted) > 0.8  # dropping the planted unit removes it
    assert abs(_box_mean(before) - _box_mean(control)) < 0.1  # dropping the control unit does not
    torch.testing.assert_close(after_exit, before)  # no hook left behind
    # the same seam edits: scale and set inside a region
    with torch.no_grad(), edit(G, "block2", [PLANT], scale=0.0):
        torch.testing.assert_close(G(z), planted)
    with torch.no_grad(), edit(G, "block2", [PLANT], value=0.0, mask=torch.ones(16, 16, dtype=torch.bool)):
        torch.testing.assert_close(G(z), planted)
    with pytest.raises(RuntimeError), A.ablate(G, {"block2": [PLANT]}):
        raise RuntimeError("boom")
    assert _no_hooks(G)
    b, a = with_without(G, z[:8], "block2", [PLANT])
    assert _box_mean(b) - _box_mean(a) > 0.8


def test_probe_and_dissection_find_the_planted_unit(bundle) -> None:
    """Forget's protocol on drawn boxes: the probe ranks the planted unit first; dissection runs."""
    G = bundle.G
    entries = [{"seed": 0, "index": i, "boxes": [list(BOX)]} for i in range(12)]
    keys, masks = A.masks_from_boxes(entries, bundle.config.image_size)
    z = torch.cat([latents(bundle.config, s, [i]) for s, i in keys])
    probe = A.fit_window_probe(G, z, masks, "block2", seed=0)
    assert int(probe.units_by_weight[0]) == PLANT
    iou = A.dissection_iou(G, z, torch.as_tensor(masks), "block2")  # top-0.5% maps: a box this large caps IoU
    assert iou.shape == (8,) and np.isfinite(iou).all() and iou[PLANT] > 0
    assert _no_hooks(G)


def test_latent_walks_inversion_and_filters(bundle) -> None:
    G = bundle.G
    z = latents(bundle.config, 0, 2)
    path = interpolate(z, 3)
    assert path.shape[1] == NZ
    direction = torch.zeros(NZ)
    direction[0] = 1.0
    assert walk(G, z[:1], direction, [0.0, 1.0]).shape[0] == 2
    with torch.no_grad():
        target = G(latents(bundle.config, 1, 2))
    inv = invert(G, target, z_dist=bundle.config.z_dist, steps=60, lr=0.05, seed=0)
    assert inv.z.shape == (2, NZ) and float(inv.errors.max()) < float(((target - target.mean()) ** 2).mean())
    # filters on the user's D: top activations, receptive fields and guided backprop through the seam
    images = generate(bundle, 2, 24).numpy()
    trained = filter_responses(bundle.D, images, "c2", [0, 1], k=2, label="trained")
    rnd = random_discriminator(bundle.config, 0)
    random_r = filter_responses(rnd, images, "c2", [0, 1], k=2, label="random")
    assert trained.guided.shape[:2] == (2, 2) and np.isfinite(trained.guided).all()
    assert trained.field.size >= 4 and random_r.field.stride == 2
    assert not torch.equal(rnd.net.c1[0].weight, bundle.D.net.c1[0].weight)
    assert _no_hooks(bundle.D) and _no_hooks(rnd)


def test_memorization_on_wrapped_model(bundle) -> None:
    """Memorization needs data: a wrapped model without it says so; with a spec it runs (pixel and D spaces)."""
    from dataclasses import replace

    from dcgan_viz.analysis.memorization import measure_checkpoint
    from dcgan_viz.data.spec import DataSpec

    with pytest.raises(ValueError, match="pass --data"):
        measure_checkpoint(bundle, n=8, n_test=8, recovery_n=0, backend="torch")
    b = replace(bundle, data=DataSpec.parse("random:count=48,test_count=48", size=32, channels=1))
    report, gen, train = measure_checkpoint(b, n=48, n_test=48, recovery_n=4, recovery_steps=5, backend="torch",
                                            n_cells=2, min_count=2, top=4)
    assert set(report.spaces) == {"pixel", "d"} and gen.shape == (48, 32, 32, 1)
    assert report.latent is not None


def test_wrap_errors() -> None:
    G = UserGenerator()
    with pytest.raises(ValueError, match="not a submodule"):
        wrap_generator(G, nz=NZ, layers={"x": nn.Conv2d(1, 1, 1)}, device="cpu")
    with pytest.raises(ValueError, match="no submodule"):
        wrap_generator(G, nz=NZ, layers={"x": "nope"}, device="cpu")
    with pytest.raises(ValueError, match="D_layers"):
        wrap_generator(G, nz=NZ, layers={"b": G.block1}, D=UserDiscriminator(), device="cpu")
    b = wrap_generator(G, nz=NZ, layers={"b": G.block1}, device="cpu",
                       sample_z=lambda seed, idx: torch.stack([torch.full((NZ,), float(seed + i)) for i in idx.tolist()]))
    assert float(latents(b.config, 2, [3])[0, 0]) == 5.0
    from dcgan_viz.checkpoint import CheckpointError, require_D
    with pytest.raises(CheckpointError, match="needs a discriminator"):
        require_D(b, "filters")


def test_forget_from_boxes_without_segmenter(bundle) -> None:
    """No segmenter: the probe's top unit (the planted one) changes the boxed region far more than
    the rest of the image, and more than a random unit does."""
    from dcgan_viz.analysis.box_forget import box_forget

    entries = [{"seed": 0, "index": i, "boxes": [list(BOX)]} for i in range(12)]
    result, probe = box_forget(bundle, entries, "block2", [1, 2], seed=0)
    assert result.units_by_weight[0] == PLANT
    assert result.inside["probe"][0] > 5 * result.outside["probe"][0]
    assert result.inside["probe"][0] > 2 * result.inside["random"][0]
    assert "random: inside" in result.markdown()
    assert _no_hooks(bundle.G)


def test_insertion_and_directions_on_wrapped_model(bundle) -> None:
    """Insert: raising the planted unit to its 99th percentile inside the bottom-right quadrant draws
    the bright pattern there and changes nothing away from it. Directions: a latent direction fitted to a read-out
    of the images (their mean brightness) moves that read-out when walked, and a random
    direction of the same norm moves it less."""
    from dcgan_viz.analysis.latent import mean_difference_direction, svm_direction

    G = bundle.G
    z = latents(bundle.config, 3, 64)
    region = torch.zeros(32, 32, dtype=torch.bool)
    region[16:, 16:] = True

    def corner(x: torch.Tensor) -> float:
        return float(x[:, 0, 16:, 16:].mean())

    with torch.no_grad():
        before = G(z)
        # the unit raised to its own 99th percentile (as insertion_rate does), inside the region only
        (high,) = A.unit_percentiles(G, z, "block2", [PLANT])
        with A.ablate(G, {"block2": [PLANT]}, value=high, mask=region):
            inserted = G(z)
    assert corner(inserted) - corner(before) > 0.8  # the pattern appears where it was inserted ...
    far = torch.ones(32, 32, dtype=torch.bool)
    far[12:, 12:] = False  # ... and nowhere else (a margin for the 3x3 convolutions after the layer)
    assert (inserted - before)[:, 0][:, far].abs().max() < 1e-5
    assert _no_hooks(G)

    zs = latents(bundle.config, 4, 400)
    with torch.no_grad():
        readout = torch.cat([_brightness(G(zs[i:i + 100])) for i in range(0, 400, 100)])
    labels = (readout > readout.median()).long()
    for direction in (mean_difference_direction(zs[labels == 1], zs[labels == 0]), svm_direction(zs, labels)):
        d = direction / direction.norm() * 2.0
        g = torch.Generator().manual_seed(0)
        rnd = torch.randn(NZ, generator=g)
        rnd = rnd / rnd.norm() * 2.0
        with torch.no_grad():
            base = _brightness(G(zs[:64]))
            moved = (_brightness(G(zs[:64] + d)) - base).mean()
            moved_rnd = (_brightness(G(zs[:64] + rnd)) - base).abs().mean()
        assert moved > 0 and moved > 2 * moved_rnd
        walked = walk(G, zs[:1], d, [0.0, 1.0])  # the walk verb's call on the wrapped model
        assert walked.shape == (2, 32, 32, 1)


def _brightness(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(1, 2, 3))
