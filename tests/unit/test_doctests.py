"""Every example in the package's docstrings runs and holds (each module of eks_proxy, found by walking the package,
so a new module's examples run without being listed here)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import eks_proxy
import pytest

MODULES = sorted(info.name for info in pkgutil.walk_packages(eks_proxy.__path__, "eks_proxy."))


def test_the_walk_finds_the_package() -> None:
    assert {"eks_proxy.model", "eks_proxy.engine.reconcile", "eks_proxy.aws.sts", "eks_proxy.cli.plan"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
