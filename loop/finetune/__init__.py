"""Fine-tuning as a job: the frozen recipe, the old+new data mix, and the run that makes a candidate.

The recipe (seed §9): start from production (weights and Adam moments), LR ÷ 10, mix the old
training pairs (the anchor set, see loop.anchor) with the corrected ``train``-split pairs, new
pairs oversampled, ~20 epochs, then the promotion gate (loop.gate) decides. Progress, losses,
ETA, warnings and the heartbeat go to the job row through a ``Reporter``; the same ``fit`` loop
as ``python -m semgan train`` does the training (CUDA + mixed precision when present).

    config.py    FinetuneConfig (the recipe and its CPU budget), request_finetune
    progress.py  Reporter, LossMonitor (D-loss spikes, G-loss collapse), JobProgress callback
    run.py       run_finetune: anchors + exported pairs → fit → candidate registered as vN
"""

from loop.finetune.config import (
    CONFIG_SETTING,
    TRIGGERS,
    FinetuneConfig,
    FinetuneError,
    JobCancelled,
    JobInterrupted,
    finetune_config,
    parse_overrides,
    request_finetune,
    set_finetune_config,
    with_overrides,
)
from loop.finetune.progress import JobProgress, LossMonitor, PrintReporter, Reporter
from loop.finetune.run import (
    FinetuneOutcome,
    cpu_threads,
    mix_repeats,
    prepare_init,
    run_finetune,
)

__all__ = [
    "CONFIG_SETTING", "TRIGGERS", "FinetuneConfig", "FinetuneError", "FinetuneOutcome",
    "JobCancelled", "JobInterrupted", "JobProgress", "LossMonitor", "PrintReporter", "Reporter", "cpu_threads",
    "finetune_config", "mix_repeats", "parse_overrides", "prepare_init", "request_finetune",
    "run_finetune", "set_finetune_config", "with_overrides",
]
