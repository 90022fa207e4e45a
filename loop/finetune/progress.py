"""Reporting a running fine-tune: the Reporter interface, loss warnings, the progress callback."""

from __future__ import annotations

import statistics
import time
from typing import Protocol

from loop.jobs import FinetunePlan
from semgan.train.callbacks import Callback, RunInfo


class Reporter(Protocol):
    """Where a running fine-tune reports: the job row (worker) or the terminal (scripts)."""

    cancelled: bool  # stop now: cancelled, or (with ``interrupted``) the worker shuts down
    interrupted: bool  # the worker shuts down: stop resumable, keep the checkpoint

    def log(self, line: str) -> None:
        """A line for the job log."""

    def warn(self, warning: str) -> None:
        """A warning the Fine-tune tab shows (a loss spike, the time budget spent)."""

    def progress(self, step: int, total: int, eta_seconds: float | None, losses: dict) -> None:
        """Training progress (also a heartbeat)."""

    def plan(self, plan: FinetunePlan) -> None:
        """What the run will do, once its data is ready."""

    def check_cancel(self) -> None:
        """Raise JobCancelled when a stop was requested."""


class PrintReporter:
    """A Reporter for scripts and benchmarks: prints, never cancelled."""

    cancelled = interrupted = False

    def log(self, line: str) -> None:
        """Print the line."""
        print(line, flush=True)

    def warn(self, warning: str) -> None:
        """Print the warning."""
        print(f"warning: {warning}", flush=True)

    def progress(self, step: int, total: int, eta_seconds: float | None, losses: dict) -> None:
        """Nothing: the job log gets the epoch lines."""

    def plan(self, plan: FinetunePlan) -> None:
        """Nothing: the log line says it."""

    def check_cancel(self) -> None:
        """Never cancelled."""


class LossMonitor:
    """Seed §9 warnings: a D-loss spike that does not recover, a G-loss (adversarial) collapse.

    Reference levels are the medians of the first ``warmup`` steps. D-loss "spikes" when its
    moving average exceeds ``spike_factor`` × its reference and is reported once it has stayed
    there ``recover_steps`` steps. The generator's adversarial term collapses when its moving
    average falls below ``collapse_fraction`` × its reference (G fools this D on this data).
    """

    def __init__(self, warmup: int, recover_steps: int, spike_factor: float = 3.0,
                 collapse_fraction: float = 0.1, smoothing: float = 0.1) -> None:
        self.warmup, self.recover_steps = max(1, warmup), max(1, recover_steps)
        self.spike_factor, self.collapse_fraction, self.smoothing = (spike_factor,
                                                                     collapse_fraction, smoothing)
        self.start: list[tuple[float, float]] = []
        self.reference: tuple[float, float] | None = None
        self.average = (0.0, 0.0)
        self.spike_since: int | None = None
        self.spike_warned = self.collapse_warned = False

    def update(self, step: int, losses: dict[str, float]) -> list[str]:
        """Feed one step's losses; returns the new warnings (usually none)."""
        values = (float(losses.get("d_loss", 0.0)), float(losses.get("g_gan", 0.0)))
        if self.reference is None:
            self.start.append(values)
            if len(self.start) >= self.warmup:
                self.reference = tuple(statistics.median(v) for v in zip(*self.start,
                                                                          strict=True))
                self.average = self.reference
            return []
        a = self.smoothing
        self.average = tuple((1 - a) * m + a * v for m, v in zip(self.average, values,
                                                                   strict=True))
        (d_ref, g_ref), (d_avg, g_avg), found = self.reference, self.average, []
        if d_ref > 1e-6 and d_avg > self.spike_factor * d_ref:
            self.spike_since = step if self.spike_since is None else self.spike_since
            if step - self.spike_since >= self.recover_steps and not self.spike_warned:
                self.spike_warned = True
                found.append(f"D-loss spike not recovering: {d_avg:.3g} (×{d_avg / d_ref:.1f} "
                             f"the start level {d_ref:.3g}) since step {self.spike_since}; the "
                             "fine-tune may be too aggressive for this data")
        else:
            self.spike_since, self.spike_warned = None, False
        if g_ref > 1e-6 and g_avg < self.collapse_fraction * g_ref and not self.collapse_warned:
            self.collapse_warned = True
            found.append(f"G-loss collapse at step {step}: adversarial term {g_avg:.3g} "
                         f"(start {g_ref:.3g}); the generator may be overfitting the new pairs")
        return found


class JobProgress(Callback):
    """Reports steps, losses and ETA; stops on cancel or when the time budget is spent."""

    def __init__(self, reporter: Reporter, monitor: LossMonitor, time_budget_s: float,
                 steps_per_epoch: int, min_interval_s: float = 1.0) -> None:
        self.reporter, self.monitor, self.budget = reporter, monitor, time_budget_s
        self.steps_per_epoch, self.min_interval_s = max(1, steps_per_epoch), min_interval_s
        self.warnings: list[str] = []
        self.cancelled = self.budget_spent = False

    def on_start(self, run: RunInfo) -> None:
        """Remember the clock and the total."""
        self.started = self.last_report = time.perf_counter()
        self.start_step, self.total = run.start_step, run.total_steps

    def on_step(self, step: int, losses: dict[str, float]) -> None:
        """Report, watch the losses, honour cancel and the budget."""
        for warning in self.monitor.update(step, losses):
            self.warnings.append(warning)
            self.reporter.warn(warning)
        now = time.perf_counter()
        elapsed = now - self.started
        eta = min(elapsed / (step - self.start_step) * (self.total - step),
                  max(0.0, self.budget - elapsed))
        if now - self.last_report >= self.min_interval_s or step == self.total:
            self.last_report = now
            self.reporter.progress(step, self.total, eta, losses)
        if step % self.steps_per_epoch == 0:
            self.reporter.log(f"epoch {step // self.steps_per_epoch}: step {step}/{self.total}, "
                              f"d_loss {losses['d_loss']:.3g}, g_l1 {losses['g_l1']:.3g}")
        if self.reporter.cancelled:
            self.cancelled = True
            self.request_stop()
        elif elapsed >= self.budget and step < self.total:
            self.budget_spent = True
            self.warnings.append(f"time budget {self.budget:.0f} s spent: stopped at step {step} "
                                 f"of {self.total}")
            self.reporter.warn(self.warnings[-1])
            self.request_stop()
