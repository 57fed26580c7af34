"""Process set-up before a model is built: the heap pad."""

from __future__ import annotations

import platform

import pytest

from zoo_core import runner

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_glibc_accepts_heap_pad():
    assert runner.pad_heap() is True


@pytest.fixture
def uncached_pad_heap():
    runner.pad_heap.cache_clear()
    yield runner.pad_heap
    runner.pad_heap.cache_clear()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_heap_pad_set_once(uncached_pad_heap):
    assert uncached_pad_heap() is True
    assert uncached_pad_heap() is True
    assert uncached_pad_heap.cache_info().hits == 1


def test_heap_pad_skipped_without_glibc(monkeypatch, uncached_pad_heap):
    monkeypatch.setattr(runner.platform, "libc_ver", lambda: ("musl", "1.2.4"))
    assert uncached_pad_heap() is False
