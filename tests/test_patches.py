"""Source patches stay inside the model folder and apply all-or-nothing to a copy."""

import os
from pathlib import Path

import pytest

from bot.errors import BadInput
from bot.repair.patches import PatchError, check_patch, working_copy

SRC = "def f(x):\n    return x.inverse()\n\n\ndef g():\n    return 1\n"
GOOD = """--- a/model.py
+++ b/model.py
@@ -1,2 +1,2 @@
 def f(x):
-    return x.inverse()
+    return x * 2
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.py").write_text(SRC)
    (d / "sub").mkdir()
    (d / "sub" / "util.py").write_text("A = 1\n")
    return d


def test_good_patch_applies_to_a_copy_only(folder, tmp_path):
    assert check_patch(GOOD, folder) == ["model.py"]
    wc = working_copy(folder, [GOOD], tmp_path / "wc")
    assert "x * 2" in (wc / "model.py").read_text()
    assert "inverse" in (folder / "model.py").read_text()  # the original is untouched
    assert (wc / "sub" / "util.py").exists()


def test_prefixless_diff_and_new_file(folder, tmp_path):
    diff = ("--- model.py\n+++ model.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x.inverse()\n+    return x\n"
            "--- /dev/null\n+++ helpers.py\n@@ -0,0 +1 @@\n+B = 2\n")
    assert check_patch(diff, folder) == ["model.py", "helpers.py"]
    wc = working_copy(folder, [diff], tmp_path / "wc")
    assert (wc / "helpers.py").read_text() == "B = 2\n"


def test_patches_apply_in_order(folder, tmp_path):
    second = "--- a/model.py\n+++ b/model.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return x * 2\n+    return x * 3\n"
    wc = working_copy(folder, [GOOD, second], tmp_path / "wc")
    assert "x * 3" in (wc / "model.py").read_text()


@pytest.mark.parametrize("path", ["/etc/passwd", "a/../../evil.py", "../evil.py", "a/sub/../../../x.py"])
def test_escaping_paths_are_refused(folder, path):
    diff = f"--- {path}\n+++ {path}\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(BadInput):
        check_patch(diff, folder)


def test_symlinked_component_is_refused(folder, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "t.py").write_text("x\n")
    os.symlink(outside, folder / "link")
    diff = "--- a/link/t.py\n+++ b/link/t.py\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(PatchError, match="symlink"):
        check_patch(diff, folder)
    with pytest.raises(PatchError):
        working_copy(folder, [diff], tmp_path / "wc")
    assert (outside / "t.py").read_text() == "x\n"


def test_not_a_diff_and_empty(folder):
    for bad in ("", "please change model.py", "@@ -1 +1 @@\n-x\n+y\n"):
        with pytest.raises(PatchError):
            check_patch(bad, folder)


def test_patch_that_does_not_apply_is_atomic_and_clear(folder, tmp_path):
    two = GOOD + "@@ -5,2 +5,2 @@\n def g():\n-    return 99\n+    return 2\n"
    with pytest.raises(PatchError, match="does not apply"):
        working_copy(folder, [two], tmp_path / "wc")
    # the failed hunk took the good one with it: nothing half-applied
    assert "inverse" in (tmp_path / "wc" / "model.py").read_text()


def test_working_copy_inside_a_git_repo_still_uses_folder_paths(folder, tmp_path):
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    wc = working_copy(folder, [GOOD], tmp_path / "deep" / "wc")
    assert "x * 2" in (wc / "model.py").read_text()
