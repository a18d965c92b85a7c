"""Training health monitor: a planted collapse is flagged, a healthy toy run is not, the check
leaves training unchanged, and the trainer logs and warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcgan_viz.checkpoint import load_checkpoint
from dcgan_viz.data.loading import load_imageset
from dcgan_viz.data.spec import DataSpec
from dcgan_viz.health import (
    DIVERSITY_WARN,
    NEIGHBOURS_WARN,
    HealthProbe,
    collapse_signs,
    distinct_neighbours,
    pairwise_distance,
)
from dcgan_viz.images import from_uint8
from dcgan_viz.models import ModelConfig
from dcgan_viz.train import Trainer, TrainConfig

SPEC = DataSpec(source="random", size=32, count=128)


class Replay(torch.nn.Module):
    """A planted generator that draws real images: ``k`` distinct ones, repeated (k = 1: one image
    for every z; k = 8: the "about eight layouts" of the collapsed rooms64; k = N: no collapse)."""

    def __init__(self, cfg: ModelConfig, images: torch.Tensor, k: int) -> None:
        super().__init__()
        self.cfg, self.images, self.k = cfg, images, k

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        idx = (torch.arange(len(z)) % self.k) * (len(self.images) // self.k)
        return from_uint8(self.images[idx])


@pytest.fixture(scope="module")
def rooms() -> torch.Tensor:
    return torch.as_tensor(load_imageset(DataSpec.parse("rooms:count=2048", size=32)).images)


@pytest.fixture(scope="module")
def healthy_run(rooms: torch.Tensor, tmp_path_factory: pytest.TempPathFactory) -> Trainer:
    """A small healthy run: 32x32 rooms, width 16, 600 steps, a health check every 100."""
    cfg = ModelConfig(image_size=32, nz=32, ngf=16, ndf=16, nc=3)
    t = Trainer(cfg, TrainConfig(max_steps=600, batch_size=32, checkpoint_every=600, progress=False, device="cpu",
                                 health_every=100, health_warmup=400),
                DataSpec.parse("rooms:count=2048", size=32), rooms, tmp_path_factory.mktemp("healthy") / "run")
    t.run()
    return t


@pytest.mark.slow
def test_planted_collapse_is_flagged_and_a_healthy_run_is_not(healthy_run: Trainer, rooms: torch.Tensor,
                                                                capsys: pytest.CaptureFixture) -> None:
    assert "warning" not in capsys.readouterr().err  # the healthy run printed no warning
    rows = [json.loads(x) for x in (healthy_run.run_dir / "log.jsonl").read_text().splitlines()]
    checks = [r for r in rows if "div_d" in r]
    assert [r["step"] for r in checks] == [100, 200, 300, 400, 500, 600]
    probe = HealthProbe.for_run(healthy_run.G, rooms.numpy(), torch.device("cpu"))
    D, cfg = healthy_run.D, healthy_run.model_cfg
    measured = {k: probe.measure(Replay(cfg, rooms, k), D) for k in (1, 8, len(rooms))}
    trained = probe.measure(healthy_run.G, D)
    for health in (trained, measured[len(rooms)]):
        assert health["div_d"] > DIVERSITY_WARN and health["nn_d"] > NEIGHBOURS_WARN
        assert collapse_signs(health, 0.3, step=5000) is None
    assert measured[1]["div_d"] < 0.01 and measured[1]["nn_d"] < 0.05 and measured[1]["div_pix"] < 0.01
    assert measured[8]["div_d"] > DIVERSITY_WARN  # pairwise distance alone misses a few repeated layouts ...
    assert measured[8]["nn_d"] < NEIGHBOURS_WARN  # ... the distinct-neighbour share does not
    assert "a few layouts repeat" in collapse_signs(measured[8], 0.3, step=5000)
    assert "diversity 0.00" in collapse_signs(measured[1], 0.3, step=5000)


def test_signs_of_collapse() -> None:
    assert "D rejects every sample" in collapse_signs({"div_d": 0.9}, 0.004, step=5000)
    assert "a few layouts repeat" in collapse_signs({"div_d": 0.9, "nn_d": 0.1}, 0.3, step=5000)
    assert collapse_signs({"div_d": 0.9, "nn_d": 0.1}, 0.3, step=10) is None
    assert collapse_signs({"div_d": 0.2}, 0.3, step=10) is None  # a new generator's samples look alike
    assert "diversity 0.20" in collapse_signs({"div_d": 0.2}, 0.3, step=5000)
    assert "fell to 0.30 of the real images' from 0.90" in collapse_signs({"div_d": 0.3}, 0.3, step=10, best_div=0.9)
    assert collapse_signs({"div_d": 0.8}, 0.3, step=5000, best_div=0.9) is None


def test_health_check_leaves_training_unchanged(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor) -> None:
    base = dict(max_steps=8, batch_size=16, checkpoint_every=8, progress=False, device="cpu")
    a = Trainer(tiny_cfg, TrainConfig(**base, health_every=2), SPEC, tiny_images, tmp_path / "a")
    a.run()
    b = Trainer(tiny_cfg, TrainConfig(**base, health_every=0), SPEC, tiny_images, tmp_path / "b")
    b.run()
    sa, sb = a.G.state_dict(), b.G.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_trainer_warns_once_on_a_collapsing_run(tmp_path: Path, tiny_cfg: ModelConfig, tiny_images: torch.Tensor,
                                                 capsys: pytest.CaptureFixture) -> None:
    """A run whose D rejects every sample (planted: D's logit bias pushed far negative) warns once
    with what to do, not at every check."""
    t = Trainer(tiny_cfg, TrainConfig(max_steps=6, batch_size=16, checkpoint_every=3, progress=False,
                                      device="cpu", health_every=2, lr=1e-12), SPEC, tiny_images, tmp_path / "run")
    with torch.no_grad():
        t.D.layer_names and getattr(t.D, t.D.layer_names[-1]).conv.bias.fill_(-30.0)
    t.run()
    err = capsys.readouterr().err
    assert err.count("warning: step") == 1
    assert "D rejects every sample" in err and "--fork-from" in err and str(tmp_path / "run") in err


def test_evaluator_tracks_frechet_each_epoch_and_keeps_the_best(tmp_path: Path, tiny_cfg: ModelConfig,
                                                                tiny_images: torch.Tensor) -> None:
    """With an evaluation helper, every epoch's last log row carries its Fréchet distance and
    checkpoints/best holds the epoch with the lowest one (never pruned)."""
    from dcgan_viz.evaluation import save_evaluator
    from dcgan_viz.evaluation.segmenter import Segmenter, SegmenterConfig

    torch.manual_seed(0)
    save_evaluator(Segmenter(SegmenterConfig(width=4, depth=2)), tmp_path / "seg", meta={"classes": ["a"] * 9})
    t = Trainer(tiny_cfg, TrainConfig(epochs=3, batch_size=32, checkpoint_every=100, keep_checkpoints=1,
                                      progress=False, device="cpu", health_every=0, evaluator=str(tmp_path / "seg")),
                SPEC, tiny_images, tmp_path / "run")
    t.run()
    rows = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    scored = {r["epoch"]: r["frechet"] for r in rows if "frechet" in r}
    assert sorted(scored) == [1, 2, 3] and [r["step"] for r in rows if "frechet" in r] == [4, 8, 12]
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best", device="cpu")
    assert best.meta["metrics"]["frechet"] == min(scored.values())
    assert best.meta["epoch"] == min(scored, key=scored.get)
