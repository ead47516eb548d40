"""Loading a definition's own Python files (bot.model_code)."""

from pathlib import Path

from bot.model_code import call, load_callable


def _folder(root: Path, name: str, value: int) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "model.py").write_text(f"VALUE = {value}\n")
    # one import at module level, one at call time: both must find this folder's model.py
    (folder / "data.py").write_text("from model import VALUE\n\n"
                                    "def top():\n    return VALUE\n\n"
                                    "def late():\n    import model\n    return model.VALUE\n")
    return folder


def test_two_folders_with_a_model_py_each_get_their_own(tmp_path):
    a, b = _folder(tmp_path, "a", 1), _folder(tmp_path, "b", 2)
    got = []
    for folder in (a, b, a):
        top = load_callable(folder, "data.py:top", "calibration.generator")
        late = load_callable(folder, "data.py:late", "calibration.generator")
        got.append((call(folder, top, what="top"), call(folder, late, what="late")))
    assert got == [(1, 1), (2, 2), (1, 1)]
