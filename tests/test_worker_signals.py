"""Shutdowns: SIGTERM/SIGINT checkpoint a fine-tune, mark it interrupted, exit in seconds; resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import loop.jobrun
from loop.finetune import request_finetune
from loop.finetune.candidate import resume_dir
from loop.jobs import FinetuneResult
from loop.worker import run_worker, spawn_worker, worker_pid
from store import Store
from tests.e2e.conftest import free_port
from tests.support import TINY_FINETUNE, add_pairs, save_tiny_model

REPO = Path(__file__).resolve().parents[1]
LONG = replace(TINY_FINETUNE, max_steps=80, epochs=10_000)  # long enough to be signalled
EXIT_WITHIN_S = 15.0


def wait_for(condition, timeout: float = 90.0, what: str = "condition") -> None:
    """Poll ``condition`` every 0.1 s until it holds (AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def start_worker(workspace: Path, log: Path, *extra: str) -> subprocess.Popen:
    """``python -m loop worker`` as a child process writing to ``log``."""
    return subprocess.Popen([sys.executable, "-m", "loop", "worker", "--workspace",
                             str(workspace), *extra], cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def stop_within(process: subprocess.Popen, sig: int) -> float:
    """Send ``sig``; the seconds until the process exited."""
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=EXIT_WITHIN_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    seconds = time.monotonic() - sent
    print(f"{signal.Signals(sig).name}: exited after {seconds:.2f} s")  # shown with -s
    return seconds


def test_sigterm_checkpoints_the_fine_tune_and_the_next_worker_resumes_it(
        workspace: Path, tmp_path: Path) -> None:
    with Store.open(workspace) as store:
        job = request_finetune(store, config=LONG)
        worker = start_worker(workspace, tmp_path / "w1.log")
        wait_for(lambda: store.get_job(job.id).step >= 5, what="five training steps")
        seconds = stop_within(worker, signal.SIGTERM)
        interrupted = store.get_job(job.id)
        assert (worker.returncode, interrupted.status) == (0, "interrupted"), \
            (tmp_path / "w1.log").read_text()
        assert seconds < EXIT_WITHIN_S
        assert "checkpoint is kept" in interrupted.error
        assert (resume_dir(store, job.id) / "candidate" / "weights.safetensors").is_file()
        assert run_worker(workspace, once=True) == 1  # the next worker resumes it
        done = store.get_job(job.id)
        assert done.status == "succeeded", done.error
        resumed = [line for line in done.log_lines if line.startswith("resuming from")]
        assert len(resumed) == 1 and int(resumed[0].rsplit(" ", 1)[1]) >= 5
        assert FinetuneResult.of(done).summary.steps == 80
        assert not resume_dir(store, job.id).exists()


def test_sigint_interrupts_like_sigterm(workspace: Path, tmp_path: Path) -> None:
    with Store.open(workspace) as store:
        job = request_finetune(store, config=LONG)
        worker = start_worker(workspace, tmp_path / "w.log")
        wait_for(lambda: store.get_job(job.id).step >= 1, what="training to start")
        assert stop_within(worker, signal.SIGINT) < EXIT_WITHIN_S
        assert store.get_job(job.id).status == "interrupted"


def test_an_idle_worker_exits_at_once_on_sigterm(workspace: Path, tmp_path: Path) -> None:
    worker = start_worker(workspace, tmp_path / "w.log")
    wait_for(lambda: "serving" in (tmp_path / "w.log").read_text(), what="the worker to start")
    assert stop_within(worker, signal.SIGTERM) < 3.0
    assert worker.returncode == 0


def test_an_interrupted_job_blocks_a_second_fine_tune_until_cancelled(workspace: Path,
                                                                     tmp_path: Path) -> None:
    from store import JobConflictError

    with Store.open(workspace) as store:
        job = request_finetune(store, config=LONG)
        worker = start_worker(workspace, tmp_path / "w.log")
        wait_for(lambda: store.get_job(job.id).step >= 1, what="training to start")
        stop_within(worker, signal.SIGTERM)
        with pytest.raises(JobConflictError, match="interrupted"):
            request_finetune(store, config=LONG)
        cancelled = store.request_cancel(job.id)
        assert (cancelled.status, cancelled.error) == ("cancelled", "cancelled while interrupted")
        assert run_worker(workspace, once=True) == 0  # nothing to resume
        assert not resume_dir(store, job.id).exists()
        assert [m.version for m in store.list_models()] == [1]


def test_a_shutdown_at_the_gate_resumes_at_the_gate(workspace: Path, monkeypatch) -> None:
    real_gate = loop.jobrun.run_gate

    def signalled_gate(*args, check_cancel, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # caught by the worker's handler (main thread)
        check_cancel()
        raise AssertionError("check_cancel should have raised")

    with Store.open(workspace) as store:
        job = request_finetune(store)
        monkeypatch.setattr(loop.jobrun, "run_gate", signalled_gate)
        assert run_worker(workspace, once=True) == 1
        interrupted = store.get_job(job.id)
        assert (interrupted.status, interrupted.result["phase"]) == ("interrupted", "gate")
        assert store.get_model(2).status == "candidate"  # kept for the gate, not rejected
        monkeypatch.setattr(loop.jobrun, "run_gate", real_gate)
        assert run_worker(workspace, once=True) == 1
        done = store.get_job(job.id)
        assert done.status == "succeeded" and done.result["candidate_version"] == 2
        assert "resuming at the gate of candidate v2" in done.log_lines
        assert sorted(m.version for m in store.list_models()) == [1, 2]  # not trained twice


def test_the_apps_sigterm_stops_its_worker_cleanly(tmp_path: Path) -> None:
    workspace, log = tmp_path / "ws", tmp_path / "app.log"
    model = save_tiny_model(tmp_path / "tiny")
    app = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--workspace", str(workspace),
                            "--model-dir", str(model), "--demo-count", "0", "--port",
                            str(free_port())], cwd=REPO, stdout=log.open("w"),
                           stderr=subprocess.STDOUT,
                           env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False",
                                "OMP_NUM_THREADS": "1"})
    try:
        wait_for(lambda: "Running on local URL" in log.read_text(), 120, "the app to start")
        with Store.open(workspace) as store:
            add_pairs(store, 8)
            job = request_finetune(store, config=LONG)
            pid = spawn_worker(workspace)
            wait_for(lambda: store.get_job(job.id).step >= 1, what="training to start")
            seconds = stop_within(app, signal.SIGTERM)
            assert seconds < EXIT_WITHIN_S, log.read_text()
            assert f"stopped worker pid {pid}" in log.read_text()
            assert worker_pid(workspace) is None
            assert store.get_job(job.id).status == "interrupted"
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()


def test_the_watchdog_ends_a_worker_whose_job_does_not_stop_in_time(tmp_path: Path) -> None:
    script = ("import time\nfrom loop.shutdown import Shutdown\n"
              "s = Shutdown(grace_s=0.3, on_overdue=lambda: print('job marked interrupted'))\n"
              "s.request('SIGTERM')\ntime.sleep(30)\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=20)
    assert (result.returncode, time.monotonic() - started < 10) == (75, True)
    assert result.stdout.splitlines() == ["job marked interrupted",
                                          "shutdown (SIGTERM) took over 0 s: exiting now"]


def _loop_imports() -> dict[str, tuple[set[str], list[str]]]:
    """Each loop module: the loop modules it imports at top level, and any imported lazily."""
    import ast

    root = REPO / "loop"
    names = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
             for p in root.rglob("*.py")}
    found = {}
    for path in root.rglob("*.py"):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        top, lazy = set(), []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("loop"):
                targets = {f"{node.module}.{a.name}" for a in node.names} & names or {node.module}
                (top.update(targets) if node in tree.body else lazy.extend(sorted(targets)))
        found[module] = (top, lazy)
    return found


def test_the_loop_modules_import_each_other_in_one_direction() -> None:
    graph = _loop_imports()
    assert {m: lazy for m, (_, lazy) in graph.items() if lazy} == {}  # no import hidden in a body
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for dependency in graph.get(module, (set(), []))[0]:
                visit(dependency, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


@pytest.mark.slow
def test_a_fine_tune_interrupted_three_times_still_trains_every_step_once(
        workspace: Path, tmp_path: Path) -> None:
    """Stress: SIGTERM, resume, SIGTERM, … until it ends; the steps add up and nothing leaks."""
    config = replace(LONG, max_steps=400)
    with Store.open(workspace) as store:
        job = request_finetune(store, config=config)
        stops = []
        for attempt in range(3):
            worker = start_worker(workspace, tmp_path / f"w{attempt}.log")
            first = store.get_job(job.id).step
            wait_for(lambda first=first: store.get_job(job.id).step >= first + 20,
                     what=f"twenty more steps (attempt {attempt})")
            stops.append(stop_within(worker, signal.SIGTERM))
            assert store.get_job(job.id).status == "interrupted"
        assert max(stops) < EXIT_WITHIN_S
        assert run_worker(workspace, once=True) == 1
        done = store.get_job(job.id)
        resumed = [int(line.rsplit(" ", 1)[1]) for line in done.log_lines
                   if line.startswith("resuming from")]
        assert done.status == "succeeded" and len(resumed) == 3
        assert resumed == sorted(resumed) and FinetuneResult.of(done).summary.steps == 400
        assert not list((workspace / "models").glob(".finetune-*"))


@pytest.mark.slow
def test_many_batch_jobs_and_signals_leave_every_sample_predicted(workspace: Path,
                                                                  tmp_path: Path) -> None:
    """Stress: a worker signalled between and inside batch jobs; the next one finishes all."""
    import numpy as np

    from loop.jobs import BATCH_PREDICT, BatchPredictRequest

    with Store.open(workspace) as store:
        ids = [store.add_sample(np.full((64, 64), 10 + i, np.uint8), 4.0, "upload").id
               for i in range(40)]
        jobs = [store.enqueue_job(BATCH_PREDICT, BatchPredictRequest(tuple(ids[k::4]), 1)
                                  .to_params()) for k in range(4)]
        for attempt in range(2):
            worker = start_worker(workspace, tmp_path / f"b{attempt}.log")
            wait_for(lambda: any(store.get_job(j.id).step > 0 for j in jobs), what="a batch")
            assert stop_within(worker, signal.SIGTERM) < EXIT_WITHIN_S
        run_worker(workspace, once=True)
        assert {store.get_job(j.id).status for j in jobs} == {"succeeded"}
        assert all(store.get_prediction(i, 1) is not None for i in ids)
