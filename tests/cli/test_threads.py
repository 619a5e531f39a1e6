"""The command line runs torch's threads on the cores other running processes leave free."""

from __future__ import annotations

import os

import pytest
import torch

from ranum import cli


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@pytest.mark.parametrize("others", [0, 1, 5])
def test_threads_leave_the_busy_cores_to_other_processes(threads, monkeypatch, others: int) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cli, "_other_running_processes", lambda: others)
    torch.set_num_threads(_cores())
    cli._share_the_cores()
    assert torch.get_num_threads() == max(1, _cores() - others)


def test_an_explicit_thread_count_is_kept(threads, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(cli, "_other_running_processes", lambda: 5)
    torch.set_num_threads(2)
    cli._share_the_cores()
    assert torch.get_num_threads() == 2


def test_the_running_count_excludes_this_process() -> None:
    count = cli._other_running_processes()
    assert count is None or count >= 0
    if os.path.exists("/proc/loadavg"):
        assert count is not None
