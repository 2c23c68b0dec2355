"""Package attributes imported on first use: nothing is imported before it is asked for."""

from __future__ import annotations

import sys

import pytest


def _package(tmp_path, monkeypatch) -> str:
    root = tmp_path / "lazypkg"
    root.mkdir()
    (root / "__init__.py").write_text(
        "from ader_tf.lazy import lazy_exports\n"
        "__getattr__, __dir__ = lazy_exports(__name__, {'thing': 'heavy'}, globals())\n")
    (root / "heavy.py").write_text("thing = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazypkg", raising=False)
    monkeypatch.delitem(sys.modules, "lazypkg.heavy", raising=False)
    return "lazypkg"


def test_a_name_is_imported_when_first_asked_for(tmp_path, monkeypatch):
    import importlib

    package = importlib.import_module(_package(tmp_path, monkeypatch))
    assert "lazypkg.heavy" not in sys.modules
    assert "thing" in dir(package)
    assert package.thing == 42
    assert "lazypkg.heavy" in sys.modules
    assert vars(package)["thing"] == 42  # kept: the next access is a plain attribute


def test_an_unknown_name_is_an_attribute_error(tmp_path, monkeypatch):
    import importlib

    package = importlib.import_module(_package(tmp_path, monkeypatch))
    with pytest.raises(AttributeError, match="has no attribute 'other'"):
        package.other  # noqa: B018
