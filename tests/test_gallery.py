"""saddle gallery: bad input refused before any compute; a real figure is small (slow)."""
import pytest

from experiments import cli


def test_gallery_refuses_unknown_names_and_existing_pngs(tmp_path, capsys):
    assert cli.main(["gallery", "no-such-experiment", "--out", str(tmp_path)]) == 2
    assert "unknown experiment" in capsys.readouterr().err
    (tmp_path / "saxe-modes.png").write_bytes(b"keep")
    assert cli.main(["gallery", "saxe-modes", "--out", str(tmp_path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "saxe-modes.png").read_bytes() == b"keep"  # nothing overwritten
    assert cli.main(["gallery", "saxe-modes", "--out", str(tmp_path), "--dpi", "5", "--overwrite"]) == 2


@pytest.mark.slow  # one smoke simulation (~10 s)
def test_gallery_writes_a_small_png(tmp_path):
    assert cli.main(["gallery", "saxe-modes", "--out", str(tmp_path), "--no-progress"]) == 0
    png = tmp_path / "saxe-modes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size < 60_000
