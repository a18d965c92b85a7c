"""The shipped evaluators' default paths, and the one-line error when a verb's evaluator is missing: it names
the verb, the evaluator, what it is for and how to get one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHIPPED = Path("checkpoints")  # relative: the repository's shipped checkpoints, found from its root
SEGMENTER = SHIPPED / "rooms-segmenter"
ATTRIBUTES = SHIPPED / "faces-attributes"
CLASSIFIER = SHIPPED / "fashion-classifier"


@dataclass(frozen=True)
class Need:
    """Why a verb needs an evaluator: e.g. Need("forget", "--segmenter", "a window segmenter",
    "to label windows in generated rooms", "or --segmenter none --boxes FILE")."""

    verb: str
    option: str
    what: str
    purpose: str
    alternative: str = ""


def missing_message(path: Path, need: Need) -> str:
    """One line: which evaluator ``need.verb`` needs, for what, that ``path`` is missing and how to get one."""
    where = f" (relative to {Path.cwd()})" if not Path(path).is_absolute() else ""
    hint = "run from the repository root (its checkpoints/ holds the shipped evaluators) or " \
        if Path(path).parts[:1] == SHIPPED.parts else ""
    alternative = f", {need.alternative}" if need.alternative else ""
    return (f"{need.verb} needs {need.what} ({need.option} PATH) {need.purpose}: {path} not found{where}; "
            f"{hint}pass {need.option} PATH{alternative} (scripts/train_shipped.py trains the evaluators)")


def load_needed(path: Path, need: Need, kind: str, device: Any = None) -> tuple[Any, dict]:
    """``load_evaluator(path, device, kind=kind)``; ValueError(``missing_message``) when ``path`` does not exist."""
    from dcgan_viz.evaluation import load_evaluator

    if not Path(path).exists():
        raise ValueError(missing_message(Path(path), need))
    return load_evaluator(path, device, kind=kind)
