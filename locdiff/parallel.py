"""Independent training runs side by side in worker processes, on a CPU.

A small network does not keep two cores busy with one process: on the project's 2-core machine
(AMD EPYC, bf16 products) a LocDiff training step of the cpu profile (L = 64, batch 256) takes
85 ms with one process on 2 threads and 101 ms on 1 thread, while two 1-thread processes side by
side take 105 ms each: 1.6x the throughput of running the same two runs one after the other.
Runs that do not depend on each other (training replicates, ablation variants) therefore train
in ``workers`` processes with cores // workers torch threads each.

``map_runs(fn, items, workers)`` calls ``fn(item)`` for every item and returns the results in the
order of ``items``: in this process, one after the other, when ``workers`` is 1; otherwise in
``workers`` spawned processes (``fn`` must be a module-level function and the items picklable).
Every run writes into its own, locked run folder and caches are built before the workers start,
so the runs are those of a sequential execution, up to the float rounding of another thread count.
An exception in a run stops the others and is raised here.

``workers_for(profile, n_runs)``: ``$LOCDIFF_WORKERS`` when set, else ``profile.workers`` when
> 0, else one process per CPU core (1 where the profile trains on a GPU: the runs would share it),
never more than ``n_runs``.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterable

from tqdm.auto import tqdm

from .checks import check_int

__all__ = ["ENV_VAR", "map_runs", "workers_for"]

ENV_VAR = "LOCDIFF_WORKERS"


def _on_gpu(profile) -> bool:
    import torch

    return profile.device == "cuda" or (profile.device == "auto" and torch.cuda.is_available())


def workers_for(profile, n_runs: int) -> int:
    """How many processes train ``n_runs`` independent runs of ``profile`` (see the module text)."""
    n_runs = check_int(n_runs, "n_runs", 0)
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            chosen = int(env)
        except ValueError:
            chosen = -1
        if chosen < 1:
            raise ValueError(f"${ENV_VAR} must be an integer >= 1 (processes for independent runs); got {env!r}")
    elif check_int(profile.workers, "workers", 0):
        chosen = profile.workers
    else:
        chosen = 1 if _on_gpu(profile) else (os.cpu_count() or 1)
    return max(1, min(chosen, n_runs))


def _start_worker(threads: int) -> None:
    """Each worker's share of the cores: ``threads`` torch (and numba) threads."""
    os.environ["NUMBA_NUM_THREADS"] = str(threads)    # numba is imported lazily, after this
    import torch

    torch.set_num_threads(threads)


def _call(job):
    index, fn, item = job
    return index, fn(item)


def map_runs(fn: Callable, items: Iterable, workers: int, desc: str | None = None,
             progress: bool = True) -> list:
    """``[fn(item) for item in items]``, in ``workers`` processes when ``workers`` > 1."""
    items = list(items)
    workers = check_int(workers, "workers", 1)
    if workers == 1 or len(items) <= 1:
        return [fn(item) for item in items]
    workers = min(workers, len(items))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: list = [None] * len(items)
    label = f"{desc} ({workers} processes x {threads} thread{'s' if threads > 1 else ''})" if desc else None
    pool = mp.get_context("spawn").Pool(workers, initializer=_start_worker, initargs=(threads,))
    try:
        jobs = pool.imap_unordered(_call, [(i, fn, item) for i, item in enumerate(items)], chunksize=1)
        for index, result in tqdm(jobs, total=len(items), desc=label, disable=not progress):
            results[index] = result
        pool.close()
    except BaseException:
        pool.terminate()            # the other runs stop; each resumes from its checkpoint next time
        raise
    finally:
        pool.join()
    return results
