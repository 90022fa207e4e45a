"""Train one tool's SEM→layout network on its corrected pairs, stopping early on its held-out pairs.

A tool expert serves only its own tool's images, so it can learn that tool fully: no anchor data
to mix in, no forgetting to guard against (every other tool keeps its generator bit for bit).
The trainer is supervised (L1 on the generator's tanh output plus soft Dice), on random crops of
the whole corrected images with the 8 flips/rotations, in bf16 autocast where the CPU has native
bf16 (AMP on CUDA), and keeps the weights that scored best on the tool's held-out pairs. The
same trainer, with a logit loss, trains the bench's from-scratch peer.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semgan.device import make_precision
from semgan.metrics import iou

Pair = tuple[np.ndarray, np.ndarray]  # (SEM float32 in [0, 1], layout mask bool), same shape
OUTPUTS = ("tanh", "logits")  # what the network returns: the generator's [-1, 1] or raw logits


@dataclass(frozen=True)
class ExpertRecipe:
    """How an expert is trained; every value was measured on the foreign-tool family."""

    crop: int = 256
    batch: int = 4
    lr: float = 2e-4
    max_steps: int = 600
    min_steps: int = 100  # early stopping may not end a run before this step
    time_budget_s: float = 420.0
    eval_every: int = 25
    patience: int = 5  # evaluations without a better held-out IoU before stopping
    dice_weight: float = 1.0
    row_drift: float = 0.0  # amplitude of the row-drift augmentation (the model's config)
    precision: str = "auto"
    seed: int = 0
    dropout: bool = True  # keep the generator's decoder dropout active while training
    loss: str = "l1"  # "l1": L1 on the tanh output; "bce": BCE on P(feature) (both + Dice)


@dataclass
class ExpertResult:
    """The best weights and how the run went (``history``: one entry per evaluation)."""

    state: dict[str, torch.Tensor]
    start_iou: float | None  # held-out IoU of the starting weights (None: no held-out pairs)
    best_iou: float | None
    best_step: int
    steps: int
    seconds: float
    stop_reason: str  # "steps", "early_stop", "time_budget", "cancelled"
    history: list[dict] = field(default_factory=list)


def _pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    pad_h, pad_w = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if not pad_h and not pad_w:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w)), mode="symmetric")


def _dihedral(image: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(image, k % 4)
    return out[:, ::-1] if k >= 4 else out


def sample_batch(pairs: Sequence[Pair], recipe: ExpertRecipe,
                 rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of random crops with random flips/rotations: (B, 1, c, c) SEM in [-1, 1], mask 0/1."""
    from semgan.data import add_row_drift

    sems, masks = [], []
    for _ in range(recipe.batch):
        sem, mask = pairs[int(rng.integers(len(pairs)))]
        if recipe.row_drift > 0 and rng.random() < 0.5:
            sem = add_row_drift(sem, rng.uniform(0.0, recipe.row_drift), rng)
        sem = _pad_to(sem, recipe.crop, recipe.crop)
        mask = _pad_to(mask, recipe.crop, recipe.crop)
        top = int(rng.integers(0, sem.shape[0] - recipe.crop + 1))
        left = int(rng.integers(0, sem.shape[1] - recipe.crop + 1))
        k = int(rng.integers(8))
        window = (slice(top, top + recipe.crop), slice(left, left + recipe.crop))
        sems.append(_dihedral(sem[window], k))
        masks.append(_dihedral(mask[window], k))
    sem_batch = torch.from_numpy(np.stack(sems).astype(np.float32) * 2 - 1)[:, None]
    mask_batch = torch.from_numpy(np.stack(masks).astype(np.float32))[:, None]
    return sem_batch, mask_batch


def probability(output: torch.Tensor, kind: str) -> torch.Tensor:
    """P(feature) from a network output of ``kind`` (see ``OUTPUTS``)."""
    return (output + 1) / 2 if kind == "tanh" else torch.sigmoid(output)


def segmentation_loss(output: torch.Tensor, target: torch.Tensor, kind: str,
                      dice_weight: float, loss: str = "l1") -> torch.Tensor:
    """L1 on ±1 targets or BCE on P(feature) (tanh), BCE on logits, plus ``dice_weight`` × soft
    Dice; computed in fp32."""
    output = output.float()
    if kind == "tanh" and loss == "bce":
        p = probability(output, kind).clamp(1e-4, 1 - 1e-4)
        base = F.binary_cross_entropy(p, target)
    elif kind == "tanh":
        base = F.l1_loss(output, target * 2 - 1)
    else:
        base = F.binary_cross_entropy_with_logits(output, target)
    p = probability(output, kind)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return base + dice_weight * dice


def holdout_iou(model: nn.Module, pairs: Sequence[Pair], kind: str, multiple: int,
                device: torch.device, precision: str = "auto") -> float:
    """Mean per-image IoU of ``model`` on whole held-out images (padded to ``multiple``)."""
    was_training = model.training
    model.eval()
    scores = []
    amp = make_precision(device, True, precision)
    with torch.inference_mode(), amp.autocast():
        for sem, mask in pairs:
            height, width = sem.shape
            padded = _pad_to(sem, -(-height // multiple) * multiple, -(-width // multiple) * multiple)
            tensor = torch.from_numpy(padded.astype(np.float32) * 2 - 1)[None, None].to(device)
            out = model(tensor.contiguous(memory_format=torch.channels_last))
            p = probability(out.float(), kind)[0, 0, :height, :width].cpu().numpy()
            scores.append(iou(p > 0.5, mask))
    model.train(was_training)
    return float(np.mean(scores))


def train_mode(model: nn.Module, dropout: bool) -> None:
    """Training mode, with the dropout layers off when ``dropout`` is False."""
    model.train()
    if not dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout | nn.Dropout2d):
                module.eval()


def train_expert(model: nn.Module, train_pairs: Sequence[Pair], holdout_pairs: Sequence[Pair],
                 recipe: ExpertRecipe, *, kind: str = "tanh", multiple: int = 32,
                 device: torch.device | None = None,
                 on_step: Callable[[int, float], None] = lambda step, loss: None,
                 should_stop: Callable[[], bool] = lambda: False) -> ExpertResult:
    """Train ``model`` in place on ``train_pairs``; return the best state by held-out IoU."""
    if kind not in OUTPUTS:
        raise ValueError(f"kind must be one of {OUTPUTS}, got {kind!r}")
    if not train_pairs:
        raise ValueError("an expert needs at least one corrected training pair")
    started = time.perf_counter()
    device = device or next(model.parameters()).device
    model.to(device).to(memory_format=torch.channels_last)
    train_mode(model, recipe.dropout)
    amp = make_precision(device, True, recipe.precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    rng = np.random.default_rng(recipe.seed)
    torch.manual_seed(recipe.seed)

    def score() -> float | None:
        if not holdout_pairs:
            return None
        found = holdout_iou(model, holdout_pairs, kind, multiple, device, recipe.precision)
        train_mode(model, recipe.dropout)
        return found

    start = score()
    best, best_step, stale = start, 0, 0
    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    history = [{"step": 0, "holdout_iou": start, "seconds": round(time.perf_counter() - started, 2)}]
    step, reason = 0, "steps"
    while step < recipe.max_steps:
        if should_stop():
            reason = "cancelled"
            break
        if time.perf_counter() - started > recipe.time_budget_s:
            reason = "time_budget"
            break
        sem, mask = sample_batch(train_pairs, recipe, rng)
        sem = sem.to(device).contiguous(memory_format=torch.channels_last)
        mask = mask.to(device)
        optimizer.zero_grad(set_to_none=True)
        with amp.autocast():
            output = model(sem)
        loss = segmentation_loss(output, mask, kind, recipe.dice_weight, recipe.loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the expert's loss became {loss.item()} at step {step + 1}")
        amp.backward(loss)
        amp.step(optimizer)
        amp.update()
        step += 1
        on_step(step, float(loss.detach()))
        if holdout_pairs and (step % recipe.eval_every == 0 or step == recipe.max_steps):
            current = score()
            history.append({"step": step, "holdout_iou": current, "loss": round(float(loss.detach()), 5),
                            "seconds": round(time.perf_counter() - started, 2)})
            if current is not None and best is not None and current > best + 1e-4:
                best, best_step, stale = current, step, 0
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            else:
                stale += 1
            if stale >= recipe.patience and step >= recipe.min_steps:
                reason = "early_stop"
                break
    if not holdout_pairs:  # nothing to choose by: the last weights
        best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        best_step = step
    return ExpertResult(best_state, start, best, best_step, step,
                        round(time.perf_counter() - started, 2), reason, history)
