"""pytest plugin of zoo: the ``zoo_conformance`` fixture, for plugin authors' own test suites.

zoo registers this module through the ``pytest11`` entry point, so the fixture
is available in every pytest run of an environment where zoo is installed.
It imports only pytest at import time, so it costs nothing in test suites
that do not use it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pytest


@pytest.fixture
def zoo_conformance() -> Callable[..., list]:
    """Return a function that runs the conformance kit on one plugin and fails the test unless every check passes.

    Call it as ``zoo_conformance("plugin", models=["m1"], **options)``; the
    options are the keyword arguments of ``zoo_core.conformance.check_plugin``
    (``limit``, ``epochs``, ``batch_size``, ``seed``, ``threads``, ``device``
    and so on). It returns the list of CheckResult when all checks pass. The
    plugin is discovered afresh on each call, so a plugin put on sys.path
    during the test is found.
    """

    def run_checks(plugin: str, models: Sequence[str] | None = None, **options: Any) -> list:
        from zoo_core.conformance import check_plugin, format_results
        from zoo_core.plugins import PluginHost

        results = check_plugin(PluginHost(), plugin, models, **options)
        failed = [result for result in results if not result.passed]
        if failed:
            names = ", ".join(f"{result.model}/{result.check}" for result in failed)
            pytest.fail(
                f"plugin {plugin!r} failed {len(failed)} of {len(results)} conformance checks ({names}):\n"
                f"{format_results(results)}",
                pytrace=False,
            )
        return results

    return run_checks
