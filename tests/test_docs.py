"""The code in docs/*.md runs: each file's ```python blocks, in order, in one namespace,
in a scratch folder (they write files there), so the docs cannot rot."""
import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
FILES = sorted(DOCS.glob("*.md"))


def blocks(path):
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_docs_exist_and_have_code():
    names = {p.name for p in FILES}
    assert {"design.md", "extending.md", "gallery.md"} <= names
    assert blocks(DOCS / "extending.md")


@pytest.mark.parametrize("path", [p for p in FILES if blocks(p)], ids=lambda p: p.name)
def test_doc_code_runs(path, tmp_path, monkeypatch):
    import experiments

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(experiments, "_PLUGINS", dict(experiments._PLUGINS))  # the docs register a plug-in
    experiments.get.cache_clear()
    monkeypatch.setattr("sys.path", [str(tmp_path)] + __import__("sys").path)
    namespace = {"__name__": f"docs_{path.stem}"}
    for i, code in enumerate(blocks(path)):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as err:  # name the block, keep the traceback
            raise AssertionError(f"{path.name}, python block {i} failed: {err!r}") from err
    import matplotlib.pyplot as plt
    plt.close("all")
    experiments.get.cache_clear()


def test_gallery_lists_every_experiment_with_its_figure():
    import experiments

    text = (DOCS / "gallery.md").read_text(encoding="utf-8")
    for name in experiments._MODULES:  # the built-in experiments
        assert f"img/{name}.png" in text and (DOCS / "img" / f"{name}.png").is_file(), name


def test_no_reference_to_files_outside_the_repo():
    root = DOCS.parent
    for path in [root / "README.md", *FILES, *root.glob("*/*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "DESIGN" + ".md" not in text and "../" + "shared" not in text, path
