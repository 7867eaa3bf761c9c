"""Ferry ships ``py.typed`` (PEP 561): a caller's mypy checks its calls into ferry."""

from __future__ import annotations

from importlib.resources import files


def test_the_package_declares_it_is_typed() -> None:
    assert files("ferry").joinpath("py.typed").is_file()
