"""Line counts of the package: the largest modules and the longest functions and classes.

Usage::

    python scripts/linecounts.py                 # top 10 of each, src/napari_hrtem_fft
    python scripts/linecounts.py --top 20
    python scripts/linecounts.py --name analyze --name LatticeMapWidget

A module's count is its physical lines; a function's or class's is from its ``def`` or
``class`` line (decorators included) to its last line, as ``ast`` gives them.  Packages
(a folder with ``__init__.py``) are also summed, so that a module split into a package
can be compared with the module it was.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "napari_hrtem_fft"


def module_lines(root: Path) -> dict[str, int]:
    """Physical lines of every ``.py`` file below ``root``, by path relative to it."""
    return {
        str(path.relative_to(root)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(root.rglob("*.py"))
    }


def package_lines(modules: dict[str, int]) -> dict[str, int]:
    """Lines per package (folder), summed over its modules and subpackages."""
    totals: dict[str, int] = {}
    for name, n in modules.items():
        parts = Path(name).parts[:-1]
        for k in range(1, len(parts) + 1):
            key = "/".join(parts[:k]) + "/"
            totals[key] = totals.get(key, 0) + n
    return totals


def definitions(root: Path) -> list[tuple[int, str, str]]:
    """``(lines, kind, "module:qualified name")`` of every function and class."""
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        module = str(path.relative_to(root))

        stack = [(tree, "")]
        while stack:
            node, prefix = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    kind = "class" if isinstance(child, ast.ClassDef) else "def"
                    name = f"{prefix}{child.name}"
                    found.append((child.end_lineno - first + 1, kind, f"{module}:{name}"))
                    stack.append((child, f"{name}."))
    return sorted(found, reverse=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="package folder")
    parser.add_argument("--top", type=int, default=10, help="rows per table")
    parser.add_argument(
        "--name", action="append", default=[], help="also report functions/classes of this name"
    )
    args = parser.parse_args(argv)

    modules = module_lines(args.root)
    print(f"# {len(modules)} modules, {sum(modules.values())} lines in {args.root.name}/")
    print("\n## largest modules (lines)")
    for name, n in sorted(modules.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{n:6d}  {name}")
    print("\n## packages (lines, summed)")
    for name, n in sorted(package_lines(modules).items(), key=lambda kv: -kv[1]):
        print(f"{n:6d}  {name}")
    defs = definitions(args.root)
    for kind, title in (("def", "longest functions"), ("class", "longest classes")):
        print(f"\n## {title} (lines)")
        for n, _, where in [d for d in defs if d[1] == kind][: args.top]:
            print(f"{n:6d}  {where}")
    if args.name:
        print("\n## by name (lines)")
        for n, kind, where in defs:
            if where.rpartition(":")[2].rpartition(".")[2] in args.name:
                print(f"{n:6d}  {kind} {where}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
