"""Fine-tuning as a job: the frozen recipe and the run that makes a candidate.

Two strategies (``FinetuneConfig.strategy``). ``tools`` (the default): every tool with corrected
pairs gets its own grey-level map and SEM→layout expert, trained on that tool's pairs and
stopped at its best on its held-out pairs; production's shared generator is kept bit for bit and
the per-tool gate (loop.toolgate) judges each tool. ``shared`` (seed §9): the whole GAN is
fine-tuned from production at LR ÷ 10 on corrected + anchor pairs and blended back, judged by
loop.gate. Progress and the heartbeat go to the job row through a ``Reporter``.

    recipe.py    FinetuneConfig (both recipes and the CPU budget), request_finetune
    tools.py     the per-tool strategy: group pairs by tool, train experts, compose the candidate
    expert.py    the supervised expert trainer (also trains the benches' from-scratch peer)
    run.py       run_finetune: the shared strategy (fit + blend), and the dispatch
    candidate.py registering the candidate as vN; the folder an interrupted run resumes from
    progress.py  Reporter, LossMonitor (D-loss spikes, G-loss collapse), JobProgress callback
"""

from loop.finetune.progress import JobProgress, LossMonitor, PrintReporter, Reporter
from loop.finetune.recipe import (
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
