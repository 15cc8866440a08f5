"""
The files of C{twistd tlshello}'s development certificate, made through the
C{tlshello} plugin as C{twistd} makes them: never written through a link,
never reused when someone else could have read or changed them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from twisted.plugins.txtlsreload_plugins import tlshelloServiceMaker

_NOBODY = 65534


def _makeService(directory: Path) -> None:
    """
    Make the C{tlshello} service with no options, in C{directory}, as
    C{twistd -n tlshello} started there does.
    """
    options = tlshelloServiceMaker.options()
    options.parseOptions(["--port", "0"])
    cwd = os.getcwd()
    os.chdir(directory)
    try:
        tlshelloServiceMaker.makeService(options)
    finally:
        os.chdir(cwd)


def _refusal(directory: Path) -> str:
    """
    The one-line message C{tlshello} ends with in C{directory}.
    """
    with pytest.raises(SystemExit) as raised:
        _makeService(directory)
    message = str(raised.value.code)
    assert "\n" not in message
    return message


def _assertPrivateKeyPair(development: Path) -> None:
    """
    C{key.pem} is a regular file only its owner can read, and it is the
    key of C{cert.pem}.
    """
    key = development / "key.pem"
    status = os.lstat(key)
    assert stat.S_ISREG(status.st_mode)
    assert stat.S_IMODE(status.st_mode) == 0o600
    privateKey = serialization.load_pem_private_key(key.read_bytes(), None)
    certificate = x509.load_pem_x509_certificate(
        (development / "cert.pem").read_bytes()
    )
    assert certificate.public_key() == privateKey.public_key()


class TestHappyPath:
    """
    With nothing in the way, the certificate is made privately and reused.
    """

    def test_madeThenReused(self, tmp_path: Path) -> None:
        """
        The directory is made 0700 with a 0600 key matching the certificate,
        and a second start reuses the same files.
        """
        development = tmp_path / "tlshello-dev"

        _makeService(tmp_path)
        first = (development / "cert.pem").read_bytes()
        _makeService(tmp_path)

        assert stat.S_IMODE(os.lstat(development).st_mode) == 0o700
        _assertPrivateKeyPair(development)
        assert (development / "cert.pem").read_bytes() == first
        assert sorted(os.listdir(development)) == ["cert.pem", "key.pem"]


class TestPlantedLinks:
    """
    A link planted where the key is written is never written through.
    """

    @pytest.mark.parametrize("name", ["key.pem", "cert.pem"])
    def test_temporaryName(self, tmp_path: Path, name: str) -> None:
        """
        A link at the temporary name the file is first written under is left
        alone; the file is written under another name and the link's target
        is neither created nor changed.
        """
        development = tmp_path / "tlshello-dev"
        development.mkdir(mode=0o700)
        target = tmp_path / "stolen"
        planted = development / f"{name}.{os.getpid()}.tmp"
        planted.symlink_to(target)

        _makeService(tmp_path)

        assert not target.exists()
        assert planted.is_symlink()
        _assertPrivateKeyPair(development)

    @pytest.mark.parametrize("name", ["key.pem", "cert.pem"])
    def test_fileIsALink(self, tmp_path: Path, name: str) -> None:
        """
        A link in place of the key or certificate is refused with a message
        naming it, and its target is neither read into use nor written.
        """
        development = tmp_path / "tlshello-dev"
        development.mkdir(mode=0o700)
        target = tmp_path / "elsewhere.pem"
        target.write_bytes(b"not yours\n")
        (development / name).symlink_to(target)

        message = _refusal(tmp_path)

        assert f"{development / name}: is a symbolic link" in message
        assert "remove the link" in message
        assert target.read_bytes() == b"not yours\n"
        assert not (
            development / ("cert.pem" if name == "key.pem" else "key.pem")
        ).exists()

    def test_directoryIsALink(self, tmp_path: Path) -> None:
        """
        A link in place of the directory is refused, and nothing is written
        where it points.
        """
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        (tmp_path / "tlshello-dev").symlink_to(target)

        message = _refusal(tmp_path)

        assert f"{tmp_path / 'tlshello-dev'}: is a symbolic link" in message
        assert os.listdir(target) == []


class TestNotADirectory:
    """
    Something other than a directory where the directory should be is
    refused, not replaced.
    """

    def test_file(self, tmp_path: Path) -> None:
        """
        A regular file named C{tlshello-dev} is refused with a message
        naming it, and left as it was.
        """
        development = tmp_path / "tlshello-dev"
        development.write_bytes(b"notes\n")

        message = _refusal(tmp_path)

        assert f"{development}: is not a directory" in message
        assert development.read_bytes() == b"notes\n"

    @pytest.mark.parametrize("name", ["key.pem", "cert.pem"])
    def test_fileIsADirectory(self, tmp_path: Path, name: str) -> None:
        """
        A directory where the key or certificate should be is refused with a
        message naming it, and left as it was.
        """
        development = tmp_path / "tlshello-dev"
        (development / name).mkdir(mode=0o700, parents=True)
        development.chmod(0o700)

        message = _refusal(tmp_path)

        assert f"{development / name}: is not a regular file: remove it" in message
        assert (development / name).is_dir()


def _openDirectory(development: Path) -> tuple[Path, str]:
    development.chmod(0o777)
    return development, "others can read or write it (mode 0777): run chmod 700"


def _readableKey(development: Path) -> tuple[Path, str]:
    (development / "key.pem").chmod(0o644)
    return (
        development / "key.pem",
        "others can read or write it (mode 0644): run chmod 600",
    )


def _writableCertificate(development: Path) -> tuple[Path, str]:
    (development / "cert.pem").chmod(0o666)
    return development / "cert.pem", "others can write it (mode 0666): run chmod go-w"


def _directoryOfAnother(development: Path) -> tuple[Path, str]:
    os.chown(development, _NOBODY, _NOBODY)
    return development, f"is owned by uid {_NOBODY}, not by this user"


def _keyOfAnother(development: Path) -> tuple[Path, str]:
    os.chown(development / "key.pem", _NOBODY, _NOBODY)
    return development / "key.pem", f"is owned by uid {_NOBODY}, not by this user"


class TestRefusedWhenOthersHadAccess:
    """
    A directory or key that others can read or write, or that another user
    owns, is refused, not reused: someone else may know the key.
    """

    @pytest.mark.parametrize(
        "spoil",
        [
            pytest.param(_openDirectory, id="directory 0777"),
            pytest.param(_readableKey, id="key 0644"),
            pytest.param(_writableCertificate, id="certificate 0666"),
            pytest.param(_directoryOfAnother, id="directory of another user"),
            pytest.param(_keyOfAnother, id="key of another user"),
        ],
    )
    def test_refused(
        self, tmp_path: Path, spoil: Callable[[Path], tuple[Path, str]]
    ) -> None:
        """
        The start ends with one line naming the path, what is wrong and what
        to do, and the key is left as it was.
        """
        if os.geteuid() != 0 and "Another" in spoil.__name__:
            pytest.skip("only root can give a file to another user")
        development = tmp_path / "tlshello-dev"
        _makeService(tmp_path)
        key = (development / "key.pem").read_bytes()
        path, problem = spoil(development)

        message = _refusal(tmp_path)

        assert message.startswith(
            f"tlshello: cannot use the development certificate: {path}: {problem}"
        )
        assert "remove the directory" in message
        assert (development / "key.pem").read_bytes() == key
