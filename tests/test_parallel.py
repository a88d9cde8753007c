"""locdiff.parallel: independent runs in worker processes, in order, each with its share of threads."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

from locdiff import parallel, profiles


def _square_and_threads(x: int) -> tuple[int, int, int]:
    """x², the torch threads and the process id of whoever ran it (module level: spawn pickles it)."""
    import torch

    return x * x, torch.get_num_threads(), os.getpid()


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("run 3 failed")
    return x


@pytest.mark.slow
def test_map_runs_keeps_the_order_and_splits_the_cores():
    out = parallel.map_runs(_square_and_threads, range(5), workers=2, progress=False)
    assert [r[0] for r in out] == [0, 1, 4, 9, 16]
    assert all(r[1] == max(1, (os.cpu_count() or 1) // 2) for r in out)
    pids = {r[2] for r in out}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_one_worker_runs_here():
    out = parallel.map_runs(_square_and_threads, [2, 3], workers=1, progress=False)
    assert [r[0] for r in out] == [4, 9] and {r[2] for r in out} == {os.getpid()}


@pytest.mark.slow
def test_an_error_in_a_run_is_raised_here():
    with pytest.raises(ValueError, match="run 3 failed"):
        parallel.map_runs(_fail_on_three, range(5), workers=2, progress=False)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_map_runs_refuses_bad_workers(bad):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        parallel.map_runs(_square_and_threads, [1], workers=bad)


def test_workers_for_follows_env_then_profile_then_cores(monkeypatch):
    P = profiles.get("cpu")
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.setattr(parallel, "_on_gpu", lambda profile: False)
    assert parallel.workers_for(P, 3) == 3                 # one per core, never more than the runs
    assert parallel.workers_for(P, 20) == 8
    assert parallel.workers_for(replace(P, workers=2), 20) == 2
    monkeypatch.setattr(parallel, "_on_gpu", lambda profile: True)
    assert parallel.workers_for(P, 3) == 1                 # the runs would share one accelerator
    monkeypatch.setenv(parallel.ENV_VAR, "4")
    assert parallel.workers_for(P, 3) == 3 and parallel.workers_for(P, 10) == 4
    assert parallel.workers_for(P, 0) == 1


@pytest.mark.parametrize("env", ["0", "-2", "two", "1.5"])
def test_workers_for_refuses_a_bad_environment_variable(monkeypatch, env):
    monkeypatch.setenv(parallel.ENV_VAR, env)
    with pytest.raises(ValueError, match=r"\$LOCDIFF_WORKERS must be an integer >= 1"):
        parallel.workers_for(profiles.get("cpu"), 3)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_workers_for_refuses_a_bad_profile_setting(monkeypatch, bad):
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        parallel.workers_for(replace(profiles.get("cpu"), workers=bad), 3)


def test_the_worker_count_is_not_part_of_a_results_settings():
    from locdiff import datasets

    P = profiles.get("smoke")
    assert datasets.settings_key(P) == datasets.settings_key(replace(P, workers=3))
