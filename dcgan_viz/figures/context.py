"""What every figure function gets: where the checkpoints are, where outputs and caches go,
the sizes to use (full or quick), and a per-run store of loaded checkpoints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..images import save_png


@dataclass(frozen=True)
class FiguresConfig:
    """Sample sizes of every figure. ``full()`` follows the issues' protocols (>= 1,000 latents
    for ACE and arithmetic, 10,000 samples for memorization); ``quick()`` is for tests."""

    seed: int = 0
    # Fig. 2/3: retraining when a checkpoint has no epoch grids
    retrain_count: int = 20000
    retrain_epochs: int = 5
    retrain_size: int = 32
    retrain_width: int = 32
    # Fig. 4
    walk_points: int = 9
    walk_steps: int = 8
    walk_trials: int = 50
    # Fig. 5
    filters: int = 6
    filter_top: int = 6
    filter_images: int = 2000
    # Fig. 6
    removal_class: str = "window"
    removal_show: int = 8  # latents in the picture: the first of removal_scan with the class
    removal_scan: int = 64
    removal_layer: str | None = None  # None: the second-highest conv layer (the paper's choice)
    removal_counts: tuple[int, ...] = (4, 8, 12, 16, 26)
    removal_n: int = 1000
    removal_fit: int = 500
    # Fig. 7/8
    arithmetic_trials: int = 1000
    arithmetic_pool: int = 4000
    arithmetic_k: tuple[int, ...] = (1, 3)
    turn_k: int = 4
    # memorization and dedup
    memorization_n: int = 10000
    memorization_test: int = 10000
    memorization_train_limit: int | None = None  # None: the whole training set
    recovery_n: int = 64
    recovery_steps: int = 200
    dedup_images: int = 5000
    dedup_plant: int = 1000
    # representation
    svm_train: int = 5000
    svm_test: int = 10000
    svm_labels: int = 1000
    umap_real: int = 1000
    umap_generated: int = 500

    @classmethod
    def full(cls) -> "FiguresConfig":
        return cls()

    @classmethod
    def quick(cls) -> "FiguresConfig":
        """Every figure and table, on small samples (about a minute on 2 CPU cores)."""
        return cls(retrain_count=256, retrain_epochs=5, retrain_size=32, retrain_width=8,
                   walk_points=3, walk_steps=4, walk_trials=4, filters=2, filter_top=3, filter_images=64,
                   removal_counts=(4, 12), removal_n=32, removal_fit=32,
                   arithmetic_trials=40, arithmetic_pool=400, arithmetic_k=(1, 3),
                   memorization_n=300, memorization_test=300, memorization_train_limit=2000, recovery_n=4, recovery_steps=10,
                   dedup_images=1000, dedup_plant=50,
                   svm_train=500, svm_test=300, svm_labels=100, umap_real=100, umap_generated=50)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FigureContext:
    """Inputs of a figures run: ``checkpoints`` holds checkpoint directories by name (rooms64,
    faces64, fashion32, fashion-overfit and the evaluators rooms-segmenter, faces-attributes,
    fashion-classifier); files go to ``out``; analysis results are cached in ``cache_dir``."""

    checkpoints: Path
    out: Path
    cache_dir: Path | None
    config: FiguresConfig
    device: str | None = None
    _bundles: dict[str, Any] = field(default_factory=dict, repr=False)

    def path(self, name: str) -> Path | None:
        """The checkpoint (or evaluator) directory called ``name``, or None when it is absent."""
        p = self.checkpoints / name
        return p if p.is_dir() and any((p / f).is_file() for f in ("checkpoint.json", "config.json")) else None

    def missing(self, *names: str) -> str | None:
        """Why a section needing the checkpoints ``names`` must be skipped, or None when all are present."""
        if all(self.path(n) is not None for n in names):
            return None
        if len(names) == 1:
            return f"no {names[0]} checkpoint under {self.checkpoints}"
        return f"needs {' and '.join(names)} under {self.checkpoints}"

    def bundle(self, name: str):
        """The loaded GAN checkpoint ``name`` (loaded once per run)."""
        if name not in self._bundles:
            from ..checkpoint import load_checkpoint

            self._bundles[name] = load_checkpoint(self.checkpoints / name, device=self.device)
        return self._bundles[name]

    def evaluator(self, name: str, kind: str, device) -> tuple[Any, dict]:
        from ..evaluation import load_evaluator

        return load_evaluator(self.checkpoints / name, device=device, kind=kind)

    def png(self, name: str, image: np.ndarray, scale: int = 1) -> str:
        """Save uint8 (H, W, C) as ``out/name``; returns the file name (relative to ``out``). Figures
        arrive composed at their final size (``plots.style``), so the default scale is 1."""
        save_png(self.out / name, image, scale=scale)
        return name
