"""Packaging hook: the wheel carries templates/, static/ and hypercorn.toml.

The repo keeps them at the top level (the layout the SPEC fixes); ``build_py`` copies
them into the built package as ``chatapp/_assets/``, where ``chatapp.asset()`` finds
them in an installed copy. An editable install (``pip install -e .``) reads them from
the checkout instead, so nothing is copied then. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
ASSETS = ("templates", "static", "hypercorn.toml")


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "chatapp" / "_assets"
        for name in ASSETS:
            source, destination = HERE / name, target / name
            if source.is_dir():
                shutil.rmtree(destination, ignore_errors=True)
                shutil.copytree(source, destination)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildPyWithAssets})
