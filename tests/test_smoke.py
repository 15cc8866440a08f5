from pathlib import Path

import trustme

from txtlsreload import ReloadingContextFactory

from .tlshelpers import clientOptions, handshake, startThenHandshake, writeLeaf


def test_smoke(tmp_path: Path, ca: trustme.CA) -> None:
    cert, key, serial = writeLeaf(ca, tmp_path)
    factory = ReloadingContextFactory(str(cert), str(key))
    r = handshake(factory, clientOptions(ca))
    assert r.succeeded, r.failureText()
    assert r.serverCertificate.serial_number == serial
    assert r.roundTrip(b"hi") == b"hi"
    r2 = handshake(factory, clientOptions(ca, hostname=None))
    assert r2.succeeded, r2.failureText()
    accepted, finish = startThenHandshake(factory, clientOptions(ca))
    cert2, key2, serial2 = writeLeaf(ca, tmp_path)
    res = factory.reload()
    assert res.changed, res
    r3 = finish()
    assert r3.serverCertificate.serial_number == serial2
    assert r.roundTrip(b"still") == b"still"
