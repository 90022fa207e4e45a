"""Tool experts: a SEM→layout generator fine-tuned for one foreign tool, used for its images only.

A model folder may carry one generator per calibrated tool (named in ``calibration.json``); the
Predictor routes each image by grey-level histogram, so the shared generator's other tools pay
nothing for it (figures: docs/RESULTS.md, "Why tool experts"). Files are safetensors, never pickle.
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
from semgan.model_card import CARD, CONFIG, WEIGHTS


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
    names = [WEIGHTS, CONFIG, CARD]
    calibration = load_calibration(folder)
    if calibration is not None:
        names.append(CALIBRATION_FILE)
        names += [tool.expert for tool in calibration.tools if tool.expert]
    return [name for name in names if (folder / name).is_file()]
