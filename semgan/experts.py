"""Tool experts: a SEM→layout generator fine-tuned for one foreign tool, used for its images only.

A fine-tune on a few dozen pairs of a new tool cannot move the shared generator far without the
old tools paying for it (measured on the review-loop probe, 20 + 20 held-out images: the shared
generator reaches drifted-tool IoU 0.78 at an old-tool cost of 0.010; blended back to cost
≤ 0.005 it keeps at most 0.76). A model folder may therefore carry, next to its calibration
(``calibration.json``), one generator per calibrated tool. The Predictor picks the tool per image
by grey-level histogram (``CalibrationSet.choose``), as it already does for the grey-level map,
and runs that tool's generator; every other image goes through the shared one, unchanged.
Files are safetensors (never pickle), named in the tool's calibration entry.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from semgan.calibration import CALIBRATION_FILE, CalibrationSet, load_calibration
from semgan.checkpoint import CheckpointError, load_into, read_safetensors
from semgan.config import ExperimentConfig
from semgan.model import GENERATORS


def expert_file(index: int) -> str:
    """File name of the ``index``-th tool expert in a model folder."""
    return f"expert_{index}.safetensors"


def save_expert(generator: nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a SEM→layout generator's state (floating tensors as ``dtype``) to ``path``."""
    tensors = {name: (t.detach().cpu().to(dtype) if t.is_floating_point() else t.detach().cpu())
               .contiguous() for name, t in generator.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), {"semgan": '{"format": "semgan", "kind": "tool-expert"}'})
    partial.replace(path)
    return path


def load_experts(model_dir: Path, calibration: CalibrationSet | None,
                 config: ExperimentConfig) -> dict[str, nn.Module]:
    """Tool name → its SEM→layout generator, for every calibrated tool that names an expert."""
    experts: dict[str, nn.Module] = {}
    for tool in calibration.tools if calibration is not None else ():
        if not tool.expert:
            continue
        path = Path(model_dir) / tool.expert
        if not path.is_file():
            raise CheckpointError(f"{path}: calibration.json names this expert for {tool.tool} but "
                                  "the file is missing; copy the whole model folder")
        tensors, _ = read_safetensors(path)
        generator = GENERATORS[config.generator.name](config.generator)
        load_into(generator, tensors, path)
        experts[tool.tool] = generator.eval()
    return experts


def inference_files(model_dir: Path) -> list[str]:
    """Names of the files a Predictor needs from a model folder (weights, config, card,
    calibration and tool experts when present): what to copy to move a model elsewhere."""
    folder = Path(model_dir)
    names = ["weights.safetensors", "config.json", "card.json"]
    calibration = load_calibration(folder)
    if calibration is not None:
        names.append(CALIBRATION_FILE)
        names += [tool.expert for tool in calibration.tools if tool.expert]
    return [name for name in names if (folder / name).is_file()]
