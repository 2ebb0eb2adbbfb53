"""Build the Lambda functions' deployment package: only what the handlers import.

``sam build`` runs this (``Makefile``: ``build-UploadFunction``,
``build-DeadLetterFunction``); the tests run it too. It copies the modules of
``handlers`` and ``pipeline`` that the two entry points import, followed
through their import statements (read, not run: the building interpreter
need not have the project's dependencies), so the package can never miss one
or carry the scoring side, and installs ``infra/handler-requirements.txt``
beside them.

    python infra/package_handler.py OUT_DIR [--python-version 3.12 --platform manylinux2014_x86_64]
    python infra/package_handler.py OUT_DIR --report     # also print size and cold import time
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("handlers.upload", "handlers.dead_letter")
HEAVY = (
    "celery",
    "kombu",
    "lightgbm",
    "numpy",
    "pyarrow",
    "pandas",
    "sklearn",
    "scipy",
    "moto",
    "pycurl",
)


OUR_PACKAGES = ("pipeline", "handlers")


def _module_file(name: str) -> Path | None:
    """The file of one of our modules (a package's ``__init__``), or None."""
    path = ROOT.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def _imported(name: str) -> set[str]:
    """Our modules that module ``name`` imports, anywhere in it, and its parent packages."""
    file = _module_file(name)
    if file is None:
        raise FileNotFoundError(f"no module {name} under {ROOT}")
    found = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    tree = ast.parse(file.read_text())
    for node in ast.walk(tree):
        if _type_checking_only(node):
            node.body = []  # imported for annotations only: never at run time
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for candidate in candidates:
            if candidate.split(".")[0] in OUR_PACKAGES and _module_file(candidate):
                found.add(candidate)
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in {
        "TYPE_CHECKING",
        "typing.TYPE_CHECKING",
    }


def handler_modules() -> list[str]:
    """Files of our own packages that the entry points import, transitively."""
    todo, seen = list(ENTRY_POINTS), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += _imported(name) - seen
    files = {_module_file(name) for name in seen}
    return sorted(str(f.relative_to(ROOT)) for f in files if f is not None)


def build(out: Path, python_version: str | None = None, platform: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for relative in handler_modules():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-compile",
        "--target",
        str(out),
        "-r",
        str(ROOT / "infra" / "handler-requirements.txt"),
    ]
    if python_version or platform:
        command += ["--only-binary=:all:", "--implementation", "cp"]
        command += ["--python-version", python_version] if python_version else []
        command += ["--platform", platform] if platform else []
    subprocess.run(command, check=True)
    for cache in out.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def zipped_mb(folder: Path) -> float:
    archive = shutil.make_archive(str(folder) + "-package", "zip", folder)
    size = Path(archive).stat().st_size / 1e6
    Path(archive).unlink()
    return size


def cold_import_seconds(folder: Path) -> float:
    """Time to import both entry points in a fresh interpreter that sees only the package."""
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        "started = time.perf_counter()\n"
        + "".join(f"import {name}\n" for name in ENTRY_POINTS)
        + "print(time.perf_counter() - started)\n"
    )
    # -S: no site-packages, -I: no environment or user site: only the stdlib and the package.
    out = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--python-version")
    parser.add_argument("--platform")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    build(args.out, args.python_version, args.platform)
    if args.report:
        heavy = [name for name in HEAVY if (args.out / name).exists()]
        print(f"package: {size_mb(args.out):.1f} MB unzipped, {zipped_mb(args.out):.1f} MB zipped")
        print(f"heavy packages inside: {heavy or 'none'}")
        imports = [cold_import_seconds(args.out) for _ in range(5)]
        print(
            f"cold import of both handlers: {min(imports) * 1000:.0f} ms (best of 5), "
            f"{sorted(imports)[2] * 1000:.0f} ms median"
        )


if __name__ == "__main__":
    main()
