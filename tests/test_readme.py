"""The README's "Add a method" example is code that runs: it cannot drift from the library."""

from __future__ import annotations

import os
import re

from ader_tf.continual.methods import METHODS
from tests.conftest import REPO_ROOT
from tests.helpers import METHOD_FLAGS, results, tiny_config


def _add_a_method_block() -> str:
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    section = readme.split("### Add a method", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the section holds one example"
    return blocks[0]


def test_the_readme_method_runs_as_the_shipped_one(tiny_data_dir, tmp_path, monkeypatch,
                                                   finished):
    from ader_tf.continual.runner import ContinualRunner

    namespace: dict = {}
    exec(compile(_add_a_method_block(), "README.md", "exec"), namespace)  # noqa: S102
    example = namespace["LwF"]
    assert example is not METHODS["lwf"]
    monkeypatch.setitem(METHODS, "lwf", example)
    runner = ContinualRunner(tiny_config(tiny_data_dir, tmp_path, export_saved_models=False,
                                         **METHOD_FLAGS["lwf"]))
    runner.run()
    assert isinstance(runner.method, example)
    assert runner.model.objective.term_names == ("ce_loss", "kd_loss")
    assert results(runner.paths.root) == results(finished("lwf").paths.root)
