"""A regular (non-editable) install ships the converters as mle_runtime.converters, the console
scripts and py.typed, and no top-level 'converters' package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contents_and_regular_install(tmp_path: Path) -> None:
    # Built from a copy of the sources: a build writes build/ and *.egg-info beside them.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("mle_runtime-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "mle_runtime/converters/sklearn/linear.py" in names
    assert "mle_runtime/py.typed" in names
    assert not any(n.startswith("converters/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    for script in ("mle =", "mle-export =", "mle-inspect =", "mle-benchmark ="):
        assert script in scripts

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    code = "import mle_runtime.converters as c, mle_runtime as m; print(c.__file__); print(m.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(line.startswith(str(target)) for line in out.stdout.splitlines())
