"""Every Python example in the README runs, and the README's set-up commands are the CI's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
EXAMPLES = re.findall(r"```python\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_python_example_runs(index: int, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", EXAMPLES[index]], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, f"README example {index + 1} failed:\n{out.stderr}"


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_supported_class() -> None:
    from mle_runtime.converters._registry import supported_names

    section = README.split("## Supported models")[1].split("\n## ")[0]
    missing = [name for name in supported_names() if not re.search(rf"\b{name}\b", section)]
    assert not missing, f"README's supported list lacks {missing}"


def test_readme_table_of_scikit_learn_classes_is_generated() -> None:
    from mle_runtime.converters.catalog import block

    assert block() in README, "README's table is stale: python3 -m mle_runtime.converters.catalog --write README.md"
    rows = [line for line in block().splitlines() if line.startswith("| `sklearn")]
    assert len(rows) >= 90
