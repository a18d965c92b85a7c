"""Attribute directions and arithmetic measured with a toy generator / classifier whose attributes
are known functions of z: a planted linear attribute must be found, a random direction and an
attribute with no linear structure must read as chance."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from dcgan_viz.analysis.latent import (
    arithmetic_trials,
    attribute_pool,
    direction_trials,
    directions_markdown,
    evaluate_expression,
    exemplar_latents,
    parse_concept,
    prior_norm,
    rescale_to_prior,
    results_markdown,
)
from dcgan_viz.cli import app
from dcgan_viz.latents import latents
from dcgan_viz.models import ModelConfig

torch.set_num_threads(1)

NZ = 16
CFG = ModelConfig(image_size=32, nz=NZ, ngf=8, ndf=8)  # only nz and the prior matter to the toy


def _unit(seed: int) -> torch.Tensor:
    w = torch.randn(NZ, generator=torch.Generator().manual_seed(seed))
    return w / w.norm()


class ToyG(nn.Module):
    """Image = 0.1 * f(z) in every pixel of channel 0, 0.1 * z.u in channel 1 (a 'beard' signal)."""

    def __init__(self, w: torch.Tensor, u: torch.Tensor, wiggle: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("u", u)
        self.wiggle = wiggle

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        p = z @ self.w
        if self.wiggle:  # no linear structure: a fast oscillation of the projection
            p = torch.sin(self.wiggle * p)
        q = z @ self.u
        img = torch.zeros(len(z), 3, 16, 16)
        img[:, 0] = 0.1 * p[:, None, None]
        img[:, 1] = 0.1 * q[:, None, None]
        return img


class ToyClassifier(nn.Module):
    """smile = sigmoid(2 m); glasses logits (-3 m, 0, -20): class 1 iff m > 0; beard = [z.u > 0]."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(attributes=(("smile", "continuous"), ("glasses", "categorical:3"),
                                                  ("beard", "categorical:2")))

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.config.attributes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        m = x[:, 0].mean((1, 2)) * 10
        q = x[:, 1].mean((1, 2)) * 10
        return {"smile": torch.sigmoid(2 * m),
                "glasses": torch.stack([-3 * m, torch.zeros_like(m), torch.full_like(m, -20.0)], 1),
                "beard": torch.stack([-q, q], 1)}

    def decode(self, out: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([out["smile"], out["glasses"].argmax(1).float(), out["beard"].argmax(1).float()], 1)


def _bundle(wiggle: float = 0.0):
    return SimpleNamespace(G=ToyG(_unit(1), _unit(2), wiggle).eval(), device=torch.device("cpu"), config=CFG)


@pytest.mark.parametrize("attribute", ["smile", "glasses"])
def test_planted_direction_found_random_direction_at_chance(attribute: str) -> None:
    bundle, clf = _bundle(), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=800)
    r = direction_trials(bundle, clf, attribute, seed=0, pool=pool, n_eval=300)
    w = _unit(1)
    for name in ("mean_difference", "svm"):
        d = r.directions[name]
        assert d["both_ways"].rate > 0.95, (name, d)
        assert d["flip_on"].n > 20 and d["flip_on"].rate > 0.5
        assert d["mean_delta_plus"] > 0 > d["mean_delta_minus"]
    rnd = r.directions["random"]
    assert 0.35 < rnd["both_ways"].rate < 0.65, rnd  # chance: a random direction raises half the time
    assert rnd["flip_on"].rate < r.directions["svm"]["flip_on"].rate - 0.3
    assert r.svm_accuracy.rate > 0.95 and r.svm_accuracy.rate > r.majority_rate + 0.2
    assert r.svm_balanced_accuracy > 0.9
    assert r.cosine > 0.8 and r.n_eval == 300 and r.step > 0
    # the fitted directions point along the planted one (the labels are a function of z.w only)
    assert r.n_fit["on"] > 10 and r.n_fit["off"] > 10
    table = directions_markdown([r])
    assert "svm" in table and "random (control)" in table and f"| {attribute} |" in table
    assert math.isfinite(r.to_dict()["step"]) and w.shape == (NZ,)


def test_no_linear_structure_reads_as_chance() -> None:
    bundle, clf = _bundle(wiggle=40.0), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=800)
    r = direction_trials(bundle, clf, "smile", seed=0, pool=pool, n_eval=300)
    for name in ("mean_difference", "svm", "random"):
        assert r.directions[name]["raise"].rate < 0.65, (name, r.directions[name])
    assert r.svm_accuracy.rate < r.majority_rate + 0.1
    assert r.svm_balanced_accuracy < 0.65
    with pytest.raises(ValueError, match="unknown attribute"):
        direction_trials(bundle, clf, "hat", pool=pool)


def test_arithmetic_trials_planted_vs_random_and_rescale() -> None:
    bundle, clf = _bundle(), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=1500)
    res = {}
    for k in (1, 3):
        res[k] = arithmetic_trials(bundle, clf, 300, k, "smile", 0, keep="beard", pool=pool)
        s = res[k].settings
        assert s["arithmetic"]["success"].rate > s["random"]["success"].rate + 0.2
        assert s["b_neg"]["success"].rate < 0.05  # the base concept alone does not smile
        assert res[k].mean_norm["arithmetic"] > 0 and not res[k].rescaled
    # a signed sum of three k-exemplar means has norm ~ sqrt(3 / k) of the prior's
    pn = prior_norm(NZ, "uniform")
    assert res[1].mean_norm["arithmetic"] > 1.3 * pn
    assert abs(res[3].mean_norm["arithmetic"] / pn - 1) < 0.35
    rs = arithmetic_trials(bundle, clf, 300, 1, "glasses", 0, keep="beard", pool=pool, rescale=True)
    assert rs.rescaled and rs.settings["arithmetic"]["success"].rate > rs.settings["random"]["success"].rate + 0.2
    md = results_markdown([res[1], res[3], rs])
    assert md.count("Concept arithmetic") == 2 and "rescaled to the prior norm" in md


def test_strict_success_detects_an_entangled_off_target_attribute() -> None:
    """In the toy, glasses is the same function of z as smile (entangled) and beard independent:
    smile arithmetic flips glasses too, so strict success (all categorical off-target attributes as
    in the b_neg image) must be ~0; glasses arithmetic has only beard to keep, so strict = success."""
    bundle, clf = _bundle(), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=1500)
    smile = arithmetic_trials(bundle, clf, 300, 3, "smile", 0, keep="beard", pool=pool)
    assert smile.settings["arithmetic"]["success"].rate > 0.8
    assert smile.settings["arithmetic"]["strict"].rate < 0.05
    assert smile.off_target_kept["arithmetic"]["glasses"] < 0.05 < 0.8 < smile.off_target_kept["arithmetic"]["beard"]
    assert smile.off_target_kept["random"]["glasses"] > 0.5 and smile.off_target_change["arithmetic"] == {}
    assert smile.settings["b_neg"]["strict"].rate == 0.0  # the base never flips its own target
    glasses = arithmetic_trials(bundle, clf, 300, 3, "glasses", 0, keep="beard", pool=pool)
    g = glasses.settings["arithmetic"]
    assert g["strict"].successes == g["success"].successes and g["strict"].rate > 0.7
    assert set(glasses.off_target_kept["arithmetic"]) == {"beard"}
    # smile (continuous) follows glasses in the toy: a large mean change, none for the base itself
    assert glasses.off_target_change["arithmetic"]["smile"] > 0.2 and glasses.off_target_change["b_neg"]["smile"] == 0
    md = results_markdown([smile, glasses])
    assert "strict [95% CI]" in md and "glasses kept 0.00" in md and "smile |change|" in md


def test_prior_norm_and_rescale() -> None:
    z = latents(CFG, 0, 5000)
    assert abs(float(z.norm(dim=1).pow(2).mean().sqrt()) / prior_norm(NZ, "uniform") - 1) < 0.02
    mean3 = z[:3000].reshape(1000, 3, NZ).mean(1)
    assert float(mean3.norm(dim=1).mean()) < 0.65 * prior_norm(NZ)  # the average of 3 shrinks ~ 1/sqrt(3)
    r = rescale_to_prior(mean3)
    assert torch.allclose(r.norm(dim=1), torch.full((1000,), prior_norm(NZ)), atol=1e-4)
    assert torch.allclose(torch.nn.functional.normalize(r, dim=1), torch.nn.functional.normalize(mean3, dim=1),
                          atol=1e-5)
    assert prior_norm(NZ, "normal") == 4.0
    with pytest.raises(ValueError):
        prior_norm(NZ, "cauchy")


def test_parse_concept_and_exemplar_latents(tmp_path) -> None:
    assert parse_concept("smile=0:12, 0:40,0:77") == ("smile", [(0, 12), (0, 40), (0, 77)])
    f = tmp_path / "lat.npy"
    np.save(f, np.ones((2, NZ), dtype=np.float32))
    name, ex = parse_concept(f"me={f}:1,3:4")
    assert name == "me" and ex == [(str(f), 1), (3, 4)]
    z = exemplar_latents(CFG, ex)
    assert z.shape == (2, NZ) and torch.equal(z[0], torch.ones(NZ)) and torch.equal(z[1], latents(CFG, 3, [4])[0])
    for bad in ["smile", "=0:1", "1x=0:1", "smile=0", "smile=a:1", "smile=0:-1", "smile=0:1,", "a b=0:1"]:
        with pytest.raises(ValueError) as err:
            parse_concept(bad)
        assert "\n" not in str(err.value)
    wrong = tmp_path / "wide.npy"
    np.save(wrong, np.zeros((2, NZ + 4), dtype=np.float32))
    with pytest.raises(ValueError, match="latent size mismatch"):
        exemplar_latents(CFG, [(str(wrong), 0)])
    with pytest.raises(ValueError, match="out of range"):
        exemplar_latents(CFG, [(str(f), 2)])
    with pytest.raises(ValueError, match="latent size mismatch"):
        evaluate_expression("a - b", {"a": torch.zeros(NZ), "b": torch.zeros(NZ + 1)})


@pytest.fixture
def toy_cli(monkeypatch):
    """The CLI's checkpoint and classifier loaders replaced by the toy generator and classifier."""
    import dcgan_viz.checkpoint
    import dcgan_viz.evaluation

    monkeypatch.setattr(dcgan_viz.checkpoint, "load_checkpoint", lambda path, device=None: _bundle())
    monkeypatch.setattr(dcgan_viz.evaluation, "load_evaluator",
                        lambda path, device=None, kind=None: (ToyClassifier(), {}))
    return CliRunner()


def _one_line_error(res, text: str) -> None:
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], res.output


def test_cli_directions_on_toy(toy_cli, tmp_path) -> None:
    out = tmp_path / "d"
    res = toy_cli.invoke(app, ["directions", "toy", "--attribute", "smile", "--attribute", "glasses", "--pool", "600",
                               "--eval", "200", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = {d["attribute"]: d for d in json.loads((out / "directions.json").read_text())["directions"]}
    for att in ("smile", "glasses"):
        dirs = data[att]["directions"]
        assert dirs["svm"]["both_ways"]["rate"] > 0.95 and dirs["mean_difference"]["both_ways"]["rate"] > 0.95
        assert 0.35 < dirs["random"]["both_ways"]["rate"] < 0.65
    assert "random (control)" in (out / "directions.md").read_text()
    _one_line_error(toy_cli.invoke(app, ["directions", "toy", "--attribute", "hat", "--out", str(out)]),
                    "unknown attribute 'hat'")


def test_cli_arithmetic_measure_mode_on_toy(toy_cli, tmp_path) -> None:
    out = tmp_path / "m"
    res = toy_cli.invoke(app, ["arithmetic", "toy", "--attribute", "smile", "--attribute", "glasses", "--trials", "200",
                               "--k", "1", "--k", "3", "--pool", "1500", "--turn-k", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "arithmetic.json").read_text())
    assert [(a["attribute"], a["k"]) for a in data["arithmetic"]] == [("smile", 1), ("smile", 3), ("glasses", 1),
                                                                       ("glasses", 3)]
    for a in data["arithmetic"]:
        s = a["settings"]
        assert s["arithmetic"]["success"]["rate"] > s["random"]["success"]["rate"] + 0.2 and not a["rescaled"]
    assert (out / "arithmetic.md").read_text().count("Concept arithmetic") == 2
    res = toy_cli.invoke(app, ["arithmetic", "toy", "--measure", "--rescale", "--trials", "50", "--k", "1",
                               "--pool", "1500", "--turn-k", "0", "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r" / "arithmetic.json").read_text())["arithmetic"][0]["rescaled"] is True
    # a pool too small for the exemplar groups, and --concept without an EXPRESSION: one-line errors
    _one_line_error(toy_cli.invoke(app, ["arithmetic", "toy", "--k", "50", "--pool", "40", "--turn-k", "0",
                                         "--out", str(tmp_path / "x")]), "pool latents in group")
    _one_line_error(toy_cli.invoke(app, ["arithmetic", "toy", "--concept", "a=0:1", "--out", str(tmp_path / "x")]),
                    "needs an EXPRESSION")


def _read_mean(bundle, clf, pool, indices) -> np.ndarray:
    """The classifier's reading (A,) of the image of the mean latent of ``indices`` (independent of the rule)."""
    with torch.no_grad():
        image = bundle.G(pool.z[indices].mean(0, keepdim=True))
        return clf.decode(clf(image))[0].numpy()


@pytest.mark.parametrize("want_on,keep_value", [(True, 0), (False, 0), (False, 1)])
def test_exemplar_rule_picks_means_the_classifier_reads_as_the_concept(want_on: bool, keep_value: int) -> None:
    """Fig. 7's rule on the linear toy: the chosen three's mean is read as the concept (checked by
    classifying the mean's image directly); on the toy without linear structure, the rule's flag
    agrees with that reading whatever it is, and falls back to the top three when none is read."""
    from dcgan_viz.analysis.latent import choose_exemplars

    names = ("smile", "glasses", "beard")
    bundle, clf = _bundle(), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=600)
    got = choose_exemplars(bundle, clf, pool, "smile", "beard", want_on, keep_value)
    reading = _read_mean(bundle, clf, pool, got.indices)
    assert got.read and len(got.indices) == 3 and 1 <= got.tried
    assert (reading[names.index("smile")] > 0.5) == want_on and reading[names.index("beard")] == keep_value
    assert (pool.column("beard").numpy()[got.indices].round() == keep_value).all()
    wiggly = _bundle(wiggle=40.0)
    pool_w = attribute_pool(wiggly, clf, seed=0, size=600)
    found = {}
    for candidates in (3, 12):
        w = choose_exemplars(wiggly, clf, pool_w, "smile", "beard", want_on, keep_value, candidates=candidates)
        r = _read_mean(wiggly, clf, pool_w, w.indices)
        assert w.read == bool(((r[0] > 0.5) == want_on) and r[2] == keep_value)
        found[candidates] = w
    # the three best-read latents average to something else (the control) ...
    assert not found[3].read and found[3].tried == 1
    # ... and a search over more candidates finds three whose mean is read as meant
    assert found[12].read and found[12].tried > 1


def test_arithmetic_trials_split_success_by_the_exemplar_rule() -> None:
    """Every trial is sorted by whether its three concept means are read as meant; on the linear
    toy nearly all are and they succeed; the counts add up to the trials."""
    bundle, clf = _bundle(), ToyClassifier()
    pool = attribute_pool(bundle, clf, seed=0, size=1500)
    r = arithmetic_trials(bundle, clf, 200, 3, "smile", 0, keep="beard", pool=pool)
    assert r.by_means["chosen"].n + r.by_means["unchosen"].n == 200
    assert r.means_read["a_pos"].rate > 0.9 and r.means_read["b_neg"].rate > 0.9
    assert r.by_means["chosen"].rate > 0.8
    assert "read as meant (a_pos / a_neg / b_neg)" in results_markdown([r])
