"""Every shell and Python block of README.md and docs/*.md runs as written.

The blocks of a page run in order in one fresh folder, as a reader following the page
would: shell blocks (``bash``; ``console`` lines after ``$``) through bash with
``napari-hrtem-fft`` on the PATH, Python blocks in one namespace per page.  The file
names the pages use are provided: real instrument files from ``shared/data`` (a lattice
image for ``particle.dm4``, PZO for ``PZO.dm3``, ...) and small synthetic movies.  A
file a console block lists as output must exist afterwards.

The few blocks that cannot run here (a cluster on other machines, installing, the demo)
are listed in ``NOT_RUN`` with the reason; the test fails when one of them disappears
from the docs, so that the list stays true.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```(bash|console|python)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)
PIXEL = 0.02  # nm, synthetic movies

#: Text of a command or block that is not run here → why.
NOT_RUN = {
    "bash scripts/demo.sh": "opens a window and installs; scripts/demo.sh is run by hand",
    "pip install": "installs the package; the test runs the installed package",
    "napari-hrtem-fft watch": "follows an acquisition until Ctrl-C; tests/test_cli_watch.py "
    "runs it on a folder being written and sends SIGINT",
    "--scheduler tcp://scheduler:8786": "a remote cluster; tests/test_cli_movie.py runs "
    "--scheduler on a LocalCluster",
    "dask scheduler &": "starts a cluster on other machines",
    "dask worker tcp://head:8786": "starts a cluster on other machines",
    "--scheduler tcp://head:8786": "a remote cluster (see above)",
    "particle.emd --image-index 1": "no shared multi-image file shows a lattice (the "
    "4-detector Velox file is at 87 nm/px); tests/io reads --image-index of it",
    'viewer.layers["Pd core-shell (synthetic)"]': "needs napari's console; "
    "tests/widgets/test_console.py runs this block in a viewer",
}

#: File names the pages use → shared file (relative to shared/data).
SHARED = {
    "particle.dm4": "dm4/PTO100-40nm-HAADF.dm4",
    "PZO.dm3": "dm3/PZO.dm3",
    "particle.emd": "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd",
    "STEM HAADF-DF4-DF2-BF Diffraction Micro.emd": (
        "velox_emd/STEM HAADF-DF4-DF2-BF Diffraction Micro.emd"
    ),
    "data/PTO.dm4": "dm4/PTO100-40nm-HAADF.dm4",
}


def blocks(page: Path) -> list[tuple[int, str, str]]:
    """``(line, language, text)`` of every bash/console/python block of a page."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2)) for m in BLOCK.finditer(text)
    ]


def console_commands(text: str) -> list[tuple[str, list[str]]]:
    """Commands of a console block (``$`` lines, ``\\`` continued) and their output lines."""
    out: list[tuple[str, list[str]]] = []
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("$ "):
            command = line[2:]
            while command.rstrip().endswith("\\"):
                command = command.rstrip()[:-1] + " " + next(lines).strip()
            out.append((command, []))
        elif out:
            out[-1][1].append(line)
    return out


def skipped(text: str) -> str | None:
    return next((why for key, why in NOT_RUN.items() if key in text), None)


@pytest.fixture(scope="module")
def movie():
    from napari_hrtem_fft.core.synthetic import pd_110_reflections, synthetic_movie

    stack, _ = synthetic_movie(
        6, (256, 256), pixel_size=PIXEL, reflections=pd_110_reflections(), lazy=False
    )
    return np.asarray(stack, dtype=np.float32)


@pytest.fixture
def workspace(tmp_path, shared_data, movie, monkeypatch):
    """A folder holding the files the pages name, and ``napari-hrtem-fft`` on the PATH."""
    import mrcfile

    import napari_hrtem_fft as hf
    from napari_hrtem_fft.core.synthetic import pd_core_shell_sample

    for name, source in SHARED.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).symlink_to(shared_data / source)
    for name in ("loading.mrcs", "movie.mrc"):
        with mrcfile.new(tmp_path / name) as mrc:
            mrc.set_data(movie)
            mrc.voxel_size = (PIXEL * 10, PIXEL * 10, 1.0)  # Å
    hf.write_tiff(
        tmp_path / "loading.tif", movie, scale=(1, PIXEL, PIXEL), units=("s", "nm", "nm")
    )
    frame, _ = pd_core_shell_sample((512, 512), pixel_size=0.0125)
    import tifffile

    tifffile.imwrite(tmp_path / "frame.tif", frame.astype(np.float32))  # no calibration
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "napari-hrtem-fft"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m napari_hrtem_fft "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    monkeypatch.chdir(tmp_path)
    return tmp_path, env


def _shell(command: str, cwd: Path, env: dict, where: str) -> None:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"{where}: `{command}` exited {result.returncode}\n{result.stdout}\n{result.stderr}"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_blocks_run(page, workspace):
    folder, env = workspace
    namespace: dict = {}
    for line, language, text in blocks(page):
        where = f"{page.name}:{line}"
        if language == "python":
            if skipped(text):
                continue
            exec(compile(text, where, "exec"), namespace)
        elif language == "bash":
            if skipped(text):
                continue
            _shell(text, folder, env, where)
        else:
            for command, output in console_commands(text):
                if skipped(command):
                    continue
                _shell(command, folder, env, where)
                for listed in output:
                    # An output line that is a bare relative path names a written file.
                    if re.fullmatch(r"[\w./-]+\.\w+", listed.strip()):
                        assert (folder / listed.strip()).exists(), f"{where}: no {listed}"


def test_not_run_list_is_current():
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    stale = [key for key in NOT_RUN if key not in text]
    assert not stale, f"NOT_RUN names text no page has any more: {stale}"


def test_sample_menu_path_is_napari_s():
    # napari lists a plugin's only sample flat in File › Open Sample, titled
    # "<sample> (<plugin display name>)" (napari.plugins.menu_item_template).
    import yaml

    manifest = yaml.safe_load((REPO / "src" / "napari_hrtem_fft" / "napari.yaml").read_text())
    (sample,) = manifest["contributions"]["sample_data"]
    title = f"{sample['display_name']} ({manifest['display_name']})"
    for page in PAGES:
        text = " ".join(page.read_text(encoding="utf-8").split())
        for match in re.finditer(r"\*\*File › Open Sample › (.*?)\*\*", text):
            assert match.group(1) == title, f"{page.name}: menu path {match.group(1)!r}"
