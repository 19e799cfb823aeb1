"""The compiled-executable cache: a second process runs without compiling; entries that do not verify
are ignored and recompiled, never executed; a read-only model folder falls back to the user folder."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import mle_runtime as mle
from mle_runtime.cache import ENTRY_MAGIC, SIBLING_DIR, cache_dirs

# Runs in a fresh process: loads the model, listens for XLA compile events, predicts, reports.
CHILD = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    events = []
    jax.monitoring.register_event_duration_secs_listener(lambda name, secs, **kw: events.append(name))
    import mle_runtime as mle
    kwargs = json.loads(sys.argv[3])
    runtime = mle.load_model(sys.argv[1], **kwargs)
    labels, proba = runtime.run([np.load(sys.argv[2])])
    print(json.dumps({"stats": runtime.stats, "labels": labels.tolist(), "proba": proba.tolist(),
                      "backend_compiles": events.count("/jax/core/compile/backend_compile_duration")}))
""")


@pytest.fixture
def model_dir(tmp_path: Path):
    X, y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)
    model = LogisticRegression().fit(X, y)
    folder = tmp_path / "models"
    folder.mkdir()
    mle.export_model(model, folder / "m.mle")
    np.save(tmp_path / "X.npy", X[:50])
    return folder, model, X[:50]


def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLE_CACHE_DIR"}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "usercache"))
    return env


def run_child(
    tmp_path: Path, model: Path, prefix: list[str] | None = None, env: dict[str, str] | None = None, **kwargs
) -> dict:
    out = subprocess.run(
        [*(prefix or []), sys.executable, "-c", CHILD, str(model), str(tmp_path / "X.npy"), json.dumps(kwargs)],
        capture_output=True,
        text=True,
        env=env or child_env(tmp_path),
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.xc"))


def test_second_process_runs_from_cache_without_compiling(tmp_path: Path, model_dir) -> None:
    folder, model, X = model_dir
    first = run_child(tmp_path, folder / "m.mle")
    assert first["stats"]["compiles"] == 1 and first["backend_compiles"] >= 1
    assert len(entries(folder / SIBLING_DIR)) == 1
    second = run_child(tmp_path, folder / "m.mle")
    assert second["stats"] == {"compiles": 0, "cache_hits": 1}
    assert second["backend_compiles"] == 0
    np.testing.assert_array_equal(second["labels"], model.predict(X))
    np.testing.assert_allclose(second["proba"], model.predict_proba(X), rtol=1e-5)


def tamper(entry: Path, how: str, tmp_path: Path) -> None:
    blob = entry.read_bytes()
    if how == "flipped payload byte":
        entry.write_bytes(blob[:-100] + bytes([blob[-100] ^ 0xFF]) + blob[-99:])
    elif how == "truncated":
        entry.write_bytes(blob[: len(blob) // 2])
    elif how == "foreign key":
        # A well-formed entry signed by another user's key (a different config folder).
        other = tmp_path / "other-config"
        env = dict(child_env(tmp_path), XDG_CONFIG_HOME=str(other))
        code = (
            "import sys; from mle_runtime.cache import ExecutableCache; from pathlib import Path;"
            "ExecutableCache([Path(sys.argv[1])]).store(sys.argv[2], Path(sys.argv[3]).read_bytes())"
        )
        payload = blob[len(ENTRY_MAGIC) + 32 :]
        (tmp_path / "payload").write_bytes(payload)
        subprocess.run(
            [sys.executable, "-c", code, str(entry.parent), entry.stem, str(tmp_path / "payload")],
            env=env,
            check=True,
            timeout=120,
        )
    elif how == "bad magic":
        entry.write_bytes(b"NOTCACHE" + blob[8:])


@pytest.mark.parametrize("how", ["flipped payload byte", "truncated", "foreign key", "bad magic"])
def test_entries_that_do_not_verify_are_recompiled(tmp_path: Path, model_dir, how: str) -> None:
    folder, model, X = model_dir
    run_child(tmp_path, folder / "m.mle")
    (entry,) = entries(folder / SIBLING_DIR)
    tamper(entry, how, tmp_path)
    again = run_child(tmp_path, folder / "m.mle")
    assert again["stats"] == {"compiles": 1, "cache_hits": 0}
    np.testing.assert_array_equal(again["labels"], model.predict(X))
    # the recompiled executable replaced the bad entry
    assert run_child(tmp_path, folder / "m.mle")["stats"] == {"compiles": 0, "cache_hits": 1}


def test_entry_of_another_model_is_not_used(tmp_path: Path, model_dir) -> None:
    folder, model, X = model_dir
    Xo, yo = make_classification(300, 8, n_informative=5, n_classes=2, random_state=1)
    other = LogisticRegression().fit(Xo, yo)
    mle.export_model(other, folder / "other.mle")
    run_child(tmp_path, folder / "other.mle")
    (other_entry,) = entries(folder / SIBLING_DIR)
    run_child(tmp_path, folder / "m.mle")
    mine = next(e for e in entries(folder / SIBLING_DIR) if e != other_entry)
    shutil.copyfile(other_entry, mine)  # the other model's (valid) entry under this model's key
    again = run_child(tmp_path, folder / "m.mle")
    assert again["stats"] == {"compiles": 1, "cache_hits": 0}
    np.testing.assert_array_equal(again["labels"], model.predict(X))


def test_read_only_model_folder_falls_back_to_user_cache(tmp_path: Path, model_dir) -> None:
    folder, model, X = model_dir
    prefix: list[str] = []
    if os.geteuid() == 0:
        # root writes anywhere; without the capability to override file modes it cannot.
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's override of file modes"
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        first = run_child(tmp_path, folder / "m.mle", prefix=prefix)
        second = run_child(tmp_path, folder / "m.mle", prefix=prefix)
    finally:
        folder.chmod(0o755)
    assert not (folder / SIBLING_DIR).exists()
    assert len(entries(tmp_path / "usercache" / "mle_runtime")) == 1
    assert first["stats"]["compiles"] == 1 and second["stats"] == {"compiles": 0, "cache_hits": 1}
    np.testing.assert_array_equal(second["labels"], model.predict(X))


def test_overrides(tmp_path: Path, model_dir) -> None:
    folder, _, _ = model_dir
    env = dict(child_env(tmp_path), MLE_CACHE_DIR=str(tmp_path / "envcache"))
    run_child(tmp_path, folder / "m.mle", env=env)
    assert len(entries(tmp_path / "envcache")) == 1
    run_child(tmp_path, folder / "m.mle", cache_dir=str(tmp_path / "argcache"))
    assert len(entries(tmp_path / "argcache")) == 1
    assert run_child(tmp_path, folder / "m.mle", cache=False)["stats"] == {"compiles": 1, "cache_hits": 0}
    assert not (folder / SIBLING_DIR).exists()


def test_key_file_open_to_others_disables_the_cache(tmp_path: Path, model_dir) -> None:
    folder, _, _ = model_dir
    run_child(tmp_path, folder / "m.mle")
    key = tmp_path / "config" / "mle_runtime" / "cache.key"
    key.chmod(0o644)
    assert run_child(tmp_path, folder / "m.mle")["stats"] == {"compiles": 1, "cache_hits": 0}


def test_the_folder_beside_a_model_is_the_folder_of_the_file_itself(tmp_path: Path, monkeypatch) -> None:
    """Through a linked file, a linked folder or "..": the cache folders are those beside the real file."""
    monkeypatch.delenv("MLE_CACHE_DIR", raising=False)
    real = tmp_path / "models" / "m.mle"
    real.parent.mkdir()
    real.write_bytes(b"")
    (tmp_path / "link.mle").symlink_to(real)
    (tmp_path / "linked-folder").symlink_to(real.parent)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "up").symlink_to(tmp_path / "models")
    beside = real.parent.resolve() / SIBLING_DIR
    for path in (
        real,
        tmp_path / "link.mle",
        tmp_path / "linked-folder" / "m.mle",
        tmp_path / "elsewhere" / "up" / ".." / "models" / "m.mle",  # ".." of the link's target: tmp_path
    ):
        first = cache_dirs(path, None)[0]
        assert first.resolve() == beside, path
    monkeypatch.chdir(real.parent)
    assert cache_dirs(Path("m.mle"), None)[0].resolve() == beside
    assert cache_dirs(real, tmp_path / "mine") == [tmp_path / "mine"]


def test_mle_cache_lists_and_clears_what_was_not_used(tmp_path: Path, model_dir, capsys, monkeypatch) -> None:
    """`mle cache` counts a model's compiled programs; `--clear --older-than DAYS` removes those unused for
    that long (a use refreshes an entry's time) and `--clear` the rest; the model compiles again after."""
    import pickle

    from mle_runtime.cli import main

    folder, model, X = model_dir
    runtime = mle.load_model(folder / "m.mle")
    runtime.run([X[:3]])
    runtime.run([X])
    both = entries(folder / SIBLING_DIR)
    assert len(both) == 2
    month_ago = both[0].stat().st_mtime - 30 * 86_400
    for entry in both:
        os.utime(entry, (month_ago, month_ago))
    mle.load_model(folder / "m.mle").run([X])  # reads one of them from the cache
    (used,) = [e for e in both if e.stat().st_mtime > month_ago]
    assert main(["cache", str(folder / "m.mle")]) == 0
    assert "2 compiled programs" in capsys.readouterr().out
    assert main(["cache", str(tmp_path), "--clear", "--older-than", "7"]) == 0
    assert "removed 1 " in capsys.readouterr().out
    assert entries(folder / SIBLING_DIR) == [used]
    assert main(["cache", str(folder), "--clear"]) == 0
    assert entries(folder / SIBLING_DIR) == []
    np.testing.assert_array_equal(mle.load_model(folder / "m.mle").predict(X), model.predict(X))
    assert len(entries(folder / SIBLING_DIR)) == 1
    monkeypatch.setenv("MLE_CACHE_DIR", str(tmp_path / "shared"))
    pickle.loads(pickle.dumps(mle.load_model(folder / "m.mle")))
    capsys.readouterr()
    assert main(["cache", "--json"]) == 0
    report = {r["folder"]: r for r in json.loads(capsys.readouterr().out)}
    assert report[str(tmp_path / "shared")]["held"]["unpickled models"]["entries"] == 1
    assert main(["cache", "--older-than", "3"]) == 1
    assert main(["cache", str(tmp_path / "missing.mle")]) == 1
    assert "no such model file or folder" in capsys.readouterr().err
