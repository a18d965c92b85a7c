"""Model cards record the remedies a run trained with and, for a fork, its lineage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dcgan_viz.train import TrainConfig

_spec = importlib.util.spec_from_file_location("write_cards", Path(__file__).parents[2] / "scripts" / "write_cards.py")
write_cards = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(write_cards)


def test_remedies_line_names_each_remedy_or_the_paper_recipe() -> None:
    assert write_cards.remedies_line(TrainConfig().to_dict()) == "none (the paper's recipe)"
    line = write_cards.remedies_line(TrainConfig(augment="translation,cutout", instance_noise=0.1,
                                                 instance_noise_steps=5000, lr_d=1e-4, label_smoothing=0.1,
                                                 dequantize=2.0).to_dict())
    for part in ("D lr 0.0001 (TTUR)", "label smoothing 0.1", "instance noise 0.1 annealed to 0 by step 5000",
                 "dequantisation 2.0 levels", "DiffAugment translation,cutout"):
        assert part in line


def test_lineage_line() -> None:
    line = write_cards.lineage_line({"parent": "/r/checkpoints/step-00004000", "parent_step": 4000,
                                     "parent_weights_sha256": "ab" * 32, "optimizer_state": "kept",
                                     "changed": {"augment": ["", "translation"]}})
    assert "forked from /r/checkpoints/step-00004000 (step 4000" in line and "augment  -> translation" in line
