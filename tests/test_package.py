"""Packaging and architecture checks: the manifest ships, the core stays pure."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_manifest_is_packaged_and_identical_to_the_root_file():
    packaged = resources.files("napari_hrtem_fft") / "napari.yaml"
    assert packaged.read_text() == (REPO / "napari.yaml").read_text()


def test_npe2_discovers_all_contributions():
    from npe2 import PluginManager

    pm = PluginManager()
    pm.discover(include_npe1=False)
    manifest = pm.get_manifest("napari-hrtem-fft")
    contrib = manifest.contributions
    assert [r.command for r in contrib.readers] == ["napari-hrtem-fft.get_reader"]
    assert [w.command for w in contrib.writers] == ["napari-hrtem-fft.write_tiff"]
    assert [s.key for s in contrib.sample_data] == ["pd_core_shell"]
    assert len(contrib.widgets) >= 2
    # Every command's python_name must import: a typo here only shows up when a user clicks.
    for command in contrib.commands:
        assert command.python_name is not None
        module, _, attr = command.python_name.partition(":")
        mod = __import__(module, fromlist=[attr])
        assert callable(getattr(mod, attr)), command.python_name


def _modules(prefix: str) -> list[str]:
    """Every module of a subpackage, walked with pkgutil (nothing listed by hand)."""
    import importlib
    import pkgutil

    package = importlib.import_module(prefix)
    names = [prefix]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{prefix}."):
        names.append(info.name)
    return names


_GUI = ("napari", "magicgui", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2")
_PURE = sorted(
    {
        "napari_hrtem_fft",
        "napari_hrtem_fft.layers",
        *_modules("napari_hrtem_fft._napari"),
        *_modules("napari_hrtem_fft.core"),
        *_modules("napari_hrtem_fft.io"),
        *_modules("napari_hrtem_fft.cli"),
    }
)


def test_the_walk_finds_the_modules():
    # The walk is not empty and reaches into subpackages (core.engine, core.movie).
    assert {"napari_hrtem_fft.core.pipeline", "napari_hrtem_fft.cli.analyze"} <= set(_PURE)
    assert any(name.startswith("napari_hrtem_fft.core.engine.") for name in _PURE)


def test_core_io_cli_and_layers_never_import_napari_qt_or_magicgui():
    # One fresh interpreter imports every module in turn and reports which one pulled
    # in a GUI package (a module imported by an earlier one is checked with it).
    code = (
        "import importlib, sys\n"
        f"gui = {_GUI!r}\n"
        f"for name in {_PURE!r}:\n"
        "    importlib.import_module(name)\n"
        "    bad = sorted(m for m in gui if m in sys.modules)\n"
        "    assert not bad, (name, bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_napari_adapter_never_imports_qt_or_magicgui():
    # napari only inside functions that build its layer types; Qt and magicgui nowhere,
    # not even inside a function (the import-time check above cannot see those).
    import ast
    import importlib

    qt = ("magicgui", "qtpy", "PyQt6", "PyQt5", "PySide6", "PySide2", "superqt")
    modules = _modules("napari_hrtem_fft._napari")
    assert "napari_hrtem_fft._napari.layers" in modules
    for name in modules:
        tree = ast.parse(Path(importlib.import_module(name).__file__).read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found = [node.module or ""]
            else:
                continue
            assert not [m for m in found if m.split(".")[0] in qt], (name, node.lineno)


def test_each_manifest_widget_has_its_own_module_and_imports_no_other_widget():
    import yaml

    manifest = yaml.safe_load((REPO / "napari.yaml").read_text(encoding="utf-8"))
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    widgets = [commands[w["command"]] for w in manifest["contributions"]["widgets"]]
    modules = [name.partition(":")[0] for name in widgets]
    assert len(set(modules)) == len(modules), modules
    for module in modules:
        others = [m for m in modules if m != module]
        code = (
            f"import sys, {module}\n"
            f"loaded = [m for m in {others!r} if m in sys.modules]\n"
            "assert not loaded, loaded\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, (module, result.stderr[-2000:])


def test_public_api_names_resolve():
    import napari_hrtem_fft as hf

    for name in hf.__all__:
        assert getattr(hf, name) is not None, name


def _project_urls() -> dict:
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["urls"]


def test_readme_images_and_links_are_absolute_for_a_package_index():
    # A package index shows README.md without the repository: a relative image is a
    # broken image there.  Every image and every link into the repository is absolute,
    # under the project's Source URL.
    import re

    source = _project_urls()["Source"].removeprefix("https://github.com/")
    text = (REPO / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)
    assert images, "the README shows the screenshots"
    for target in targets:
        assert target.startswith(("https://", "http://", "#")), target
    for image in images:
        assert image.startswith(f"https://raw.githubusercontent.com/{source}/main/"), image
        assert (REPO / image.split("/main/", 1)[1]).is_file(), image


def test_license_is_an_spdx_string_with_the_license_file():
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "BSD 3-Clause License" in text and "napari-hrtem-fft developers" in text
