"""
Tests against a real, non-editable install: a wheel built from this tree and
installed with pip into a new virtual environment.

Editable installs and running from the source tree both put
C{twisted/plugins} of the tree on the path, which hides packaging mistakes
(a plugin module left out of the wheel, a stray C{__init__.py}); so this
looks from outside the tree, with nothing but the installed wheel.

Building needs setuptools (pip fetches it for the isolated build) and the
install needs the dependencies, so this reaches the package index, or pip's
cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from .processes import ServerProcess, servedSerial
from .tlshelpers import writeLeaf

ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.installed

# What a checkout may hold that is not part of the source.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    "_build",
    "dropin.cache",
    "tlshello-dev",
    "results",
)


@dataclass(frozen=True)
class _Installed:
    wheel: Path
    venv: Path
    outside: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    def run(self, *argv: str | Path) -> subprocess.CompletedProcess[str]:
        """
        Run a command of the new environment, from outside the source tree,
        with nothing of this test run's environment on its path.
        """
        return subprocess.run(
            [str(a) for a in argv],
            cwd=self.outside,
            env=_cleanEnvironment(),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _cleanEnvironment() -> dict[str, str]:
    environment = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):
        environment.pop(name, None)
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return environment


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> _Installed:
    """
    Build a wheel from a clean copy of this tree (stale C{build/} output must
    not leak in) and install it with its dependencies into a new virtual
    environment.
    """
    base = tmp_path_factory.mktemp("installed")
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, source],
        check=True,
        env=_cleanEnvironment(),
        timeout=600,
    )
    [wheel] = wheels.glob("txtlsreload-*.whl")
    venv = base / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120
    )
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    subprocess.run(
        [*pip, "install", "-q", wheel],
        check=True,
        env=_cleanEnvironment(),
        timeout=600,
    )
    outside = base / "elsewhere"
    outside.mkdir()
    return _Installed(wheel, venv, outside)


class TestWheel:
    """
    What the wheel holds.
    """

    def test_pluginsShipped(self, installed: _Installed) -> None:
        """
        The wheel carries the plugin module, and neither an C{__init__.py}
        for C{twisted/plugins} (which would shadow Twisted's own) nor a
        plugin cache.
        """
        names = zipfile.ZipFile(installed.wheel).namelist()
        assert "twisted/plugins/txtlsreload_plugins.py" in names
        assert "twisted/plugins/__init__.py" not in names
        assert not [n for n in names if n.endswith("dropin.cache")]
        assert "txtlsreload/_hello.py" in names
        assert "txtlsreload/py.typed" in names


class TestInstalled:
    """
    The installed package, used from outside the source tree.
    """

    def test_twistdHelpListsTlshello(self, installed: _Installed) -> None:
        """
        C{twistd --help} of the new environment lists C{tlshello}.
        """
        result = installed.run(installed.bin / "twistd", "--help")
        assert result.returncode == 0, result.stderr
        assert "tlshello" in result.stdout

    def test_serverFromString(
        self, installed: _Installed, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        C{serverFromString(reactor, "tlsreload:...")} finds the endpoint
        parser, and both it and the plugin module come from the install.
        """
        cert, key, serial = writeLeaf(ca, tmp_path)
        code = f"""
import sys
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString
endpoint = serverFromString(
    reactor, "tlsreload:0:privateKey={key}:certKey={cert}:sighup=no"
)
print(type(endpoint).__name__)
print(endpoint.contextFactory.certificate.serialNumber)
print(sys.modules["txtlsreload"].__file__)
print(sys.modules["twisted.plugins.txtlsreload_plugins"].__file__)
"""
        result = installed.run(installed.bin / "python", "-c", code)
        assert result.returncode == 0, result.stderr
        kind, servedSerial, package, plugin = result.stdout.split()
        assert kind == "ReloadingServerEndpoint"
        assert int(servedSerial) == serial
        assert Path(package).is_relative_to(installed.venv)
        assert Path(plugin).is_relative_to(installed.venv)

    def test_tlshelloServes(
        self, installed: _Installed, tmp_path: Path, ca: trustme.CA
    ) -> None:
        """
        The installed C{twistd tlshello} serves the given certificate.
        """
        cert, key, serial = writeLeaf(ca, tmp_path)
        twistd = [installed.bin / "twistd", "-n", "--pidfile="]
        server = ServerProcess(
            [*twistd, "tlshello", "--port", "0", "--cert", cert, "--key", key],
            tmp_path / "tlshello.log",
            cwd=installed.outside,
            env=_cleanEnvironment(),
        )
        try:
            port = server.listeningPort()
            assert servedSerial(port, ca.cert_pem.bytes()) == serial
        finally:
            server.stop()
