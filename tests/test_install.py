"""Installing is not tied to a checkout (SPEC §2): a wheel of the repo, installed into a
fresh venv, serves from an empty directory with ./instance there.

The wheel is built without build isolation and installed with --no-deps, and the
project's own venv lends its site-packages to the new venv through a .pth file: no
download. The copy of chatapp that runs is the wheel's (checked), not the checkout.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from .servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["chatapp", "templates", "static", "hypercorn.toml", "pyproject.toml", "setup.py",
           "MANIFEST.in", "README.md", "LICENSE"]


@dataclass
class Install:
    venv: Path
    wheel: Path
    site_packages: Path

    @property
    def assets(self) -> Path:
        return self.site_packages / "chatapp" / "_assets"

    @property
    def chatapp(self) -> str:
        return str(self.venv / "bin" / "chatapp")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


def clean_env() -> dict[str, str]:
    """The environment of someone who only installed chatapp: no CHATAPP_ settings."""
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith(("CHATAPP_", "PYTHON", "PROMETHEUS_MULTIPROC"))
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    work = tmp_path_factory.mktemp("install")
    # Build from a copy: an in-tree build would leave build/ in the shared checkout.
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "_assets"))
        else:
            shutil.copy2(path, source / name)
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(dist), str(source)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("chatapp-*.whl")

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                   check=True, capture_output=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    # The dependencies come from the project's venv (a plain path entry: its own .pth
    # files, the editable install's finder among them, are not processed).
    ours = sysconfig.get_paths()["purelib"]
    (Path(site_packages) / "chatapp-test-deps.pth").write_text(ours + "\n")
    return Install(venv, wheel, Path(site_packages))


@pytest.mark.slow
def test_wheel_carries_templates_static_and_hypercorn_toml(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for folder in ("templates", "static"):
        for file in (ROOT / folder).rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                relative = file.relative_to(ROOT).as_posix()
                assert f"chatapp/_assets/{relative}" in names
    assert "chatapp/_assets/hypercorn.toml" in names
    assert "chatapp/cli.py" in names


@pytest.mark.slow
def test_installed_copy_is_the_one_that_runs(installed, tmp_path):
    result = subprocess.run(
        [installed.python, "-c", "import chatapp; print(chatapp.__file__); "
         "print(chatapp.asset('templates'))"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    module, templates = result.stdout.split()
    assert Path(module).is_relative_to(installed.venv)
    assert Path(templates).is_relative_to(installed.venv)
    assert (Path(templates) / "login.html").is_file()


@pytest.mark.slow
def test_version_of_the_installed_command(installed, tmp_path):
    from importlib.metadata import version

    result = subprocess.run([installed.chatapp, "--version"], cwd=tmp_path, env=clean_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"chatapp, version {version('chatapp')}"



def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextlib.contextmanager
def serving(installed: Install, cwd: Path, *args: str, port: int) -> Iterator[Path]:
    """``chatapp serve ARGS`` from ``cwd`` until it answers /healthz; yields its log."""
    log_path = cwd.parent / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [installed.chatapp, "serve", *args], cwd=cwd, env=clean_env(),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"chatapp serve exited:\n{log_path.read_text()}")
            try:
                if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"chatapp serve did not answer:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.mark.slow
def test_serve_from_an_empty_directory(installed, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    with serving(installed, site, "--bind", f"127.0.0.1:{port}", port=port) as log:
        status, page = get(f"http://127.0.0.1:{port}/login")
        assert status == 200
        assert 'name="csrf_token"' in page and 'name="password"' in page
        assets = re.findall(r'(?:href|src)="(/static/[^"?]+)', page)
        assert assets, page
        for path in assets:
            status, body = get(f"http://127.0.0.1:{port}{path}")
            assert status == 200, path
            assert body == (installed.assets / path.removeprefix("/")).read_text()
    # ./instance where it was started: the development secret and the database.
    assert (site / "instance" / "secret_key").is_file()
    assert (site / "instance" / "chatapp.db").is_file()
    # The packaged hypercorn.toml was used: it turns the access log on.
    assert f"with {(installed.assets / 'hypercorn.toml').resolve()} " in log.read_text()
    assert re.search(r'"GET /login[^"]*" 200', log.read_text()), log.read_text()


@pytest.mark.slow
def test_serve_uses_a_hypercorn_toml_in_the_working_directory(installed, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    port = free_port()
    text = (installed.assets / "hypercorn.toml").read_text()
    (site / "hypercorn.toml").write_text(
        re.sub(r"(?m)^bind = .*$", f'bind = ["127.0.0.1:{port}"]', text)
    )
    with serving(installed, site, port=port) as log:  # no --bind: the local file's
        assert get(f"http://127.0.0.1:{port}/login")[0] == 200
    assert f"serving on http://127.0.0.1:{port} with hypercorn.toml " in log.read_text()
    assert (site / "instance").is_dir()


def test_systemd_unit_verifies_and_runs_chatapp_serve(tmp_path):
    """docs/chatapp.service parses cleanly (systemd-analyze warns on stderr about any
    unknown or malformed setting) and its ExecStart is a `chatapp serve` command line."""
    from chatapp.cli import main

    unit = (ROOT / "docs" / "chatapp.service").read_text()
    (exec_start,) = re.findall(r"(?m)^ExecStart=(.*)$", unit)
    program, command, *args = exec_start.split()
    assert program == "/srv/chatapp/venv/bin/chatapp"
    assert main.get_command(None, command) is not None  # type: ignore[arg-type]
    with main.commands[command].make_context(command, args) as context:  # or raises
        assert context.params["bind"] == "127.0.0.1:8000"
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit as installed, but with a chatapp that exists on this machine.
    local = tmp_path / "chatapp.service"
    local.write_text(unit.replace(program, str(Path(sys.executable).parent / "chatapp")))
    result = subprocess.run(["systemd-analyze", "verify", str(local)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_every_package_chatapp_imports_is_declared():
    """A fresh install gets what chatapp imports, not only what happens to come along."""
    import ast

    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {Requirement(spec).name.lower().replace("_", "-")
                for spec in project["dependencies"]}
    imported: set[str] = set()
    for file in (ROOT / "chatapp").rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"chatapp"}
    owners = packages_distributions()
    missing = {}
    for module in sorted(third_party):
        distributions = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
        if not distributions & declared:
            missing[module] = sorted(distributions)
    assert not missing, f"imported but not in [project] dependencies: {missing}"
