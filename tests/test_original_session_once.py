"""benchmarks/original_session_once.py's pure parts: the exactly-once rule and where it writes.

The patched copy itself needs a checkout of the original ADER and is not built here; a stand-in
checkout made of the substitutions' own targets checks that every patch applies and is recorded.
"""

from __future__ import annotations

import os
import re

import pytest

from benchmarks import original_session_once as patcher


def test_substitute_replaces_the_one_occurrence():
    assert patcher.substitute("a\nb\nc\n", "b\n", "B\n", "f") == "a\nB\nc\n"


@pytest.mark.parametrize("text, found", [("a\nc\n", 0), ("b\nb\n", 2)])
def test_substitute_needs_exactly_one_occurrence(text, found):
    with pytest.raises(patcher.PatchError, match=f"f \\(x\\): .*'b'.*found {found}$"):
        patcher.substitute(text, "b\n", "B\n", "f (x)")


def _stand_in_checkout(folder) -> str:
    """A folder with main.py, util.py, data/util.py made of the patches' targets, and ADER.py."""
    texts: dict[str, str] = {}
    for name, _, old, _ in patcher.SESSION_ONCE + patcher.RUN_FIXES:
        texts[name] = texts.get(name, "") + "# --\n" + old
    for name, text in texts.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(folder, "ADER.py"), "w", encoding="utf-8") as f:
        f.write("")
    os.makedirs(os.path.join(folder, "data", "DIGINETICA"))
    return str(folder)


def test_every_patch_applies_once_and_is_recorded(tmp_path):
    checkout = _stand_in_checkout(tmp_path / "ader")
    data = tmp_path / "data" / "DIGINETICA"
    data.mkdir(parents=True)
    out = tmp_path / "copy"
    notes = patcher.write_copy(checkout, str(out), str(tmp_path / "data"))
    main = (out / "main.py").read_text()
    assert "    sess = tf.Session(config=config)\n    sess.__enter__()\n" in main
    assert not re.search(r"^\s*with tf\.Session", main, re.M)
    assert main.count("dtype=object") == 2
    assert (out / "util.py").read_text().count("astype(np.float32)") == 3
    assert os.path.realpath(out / "data" / "DIGINETICA") == str(data)
    for name, label, _, _ in patcher.SESSION_ONCE + patcher.RUN_FIXES:
        assert f"patch {name}: {label}" in notes
    assert (out / "PATCHED.txt").read_text().splitlines() == notes
    # A second run onto the same (now non-empty) folder is refused.
    with pytest.raises(patcher.PatchError, match="not empty"):
        patcher.write_copy(checkout, str(out), None)


def test_refuses_to_write_inside_the_repository(tmp_path):
    checkout = _stand_in_checkout(tmp_path / "ader")
    inside = os.path.join(patcher.REPOSITORY, "build", "ader-copy")
    with pytest.raises(patcher.PatchError, match="inside this repository"):
        patcher.write_copy(checkout, inside, None)
    assert not os.path.exists(inside)


def test_a_target_missing_from_the_checkout_is_one_line_error(tmp_path, capsys):
    checkout = _stand_in_checkout(tmp_path / "ader")
    main = os.path.join(checkout, "main.py")
    with open(main, encoding="utf-8") as f:
        text = f.read()
    with open(main, "w", encoding="utf-8") as f:
        f.write(text.replace("with tf.Session(config=config) as sess:", "with x:"))
    with pytest.raises(SystemExit) as error:
        patcher.main([f"--original_dir={checkout}", f"--out_dir={tmp_path / 'copy'}"])
    assert str(error.value).count("\n") == 0
    assert "no Session per period" in str(error.value) and "found 0" in str(error.value)
