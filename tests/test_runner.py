"""Process set-up before a model is built: the heap pad."""

from __future__ import annotations

import platform

import pytest

from zoo_core import runner

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_glibc_accepts_heap_pad():
    assert runner.pad_heap() is True


def test_heap_pad_skipped_without_glibc(monkeypatch):
    monkeypatch.setattr(runner.platform, "libc_ver", lambda: ("musl", "1.2.4"))
    assert runner.pad_heap() is False
