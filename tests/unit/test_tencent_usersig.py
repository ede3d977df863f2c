"""The Tencent UserSig verifier (server/dialects/usersig.py): the study's two computed vectors
(§2.2, Python- and Go-style tickets of the same fields), and tickets minted by the vendor's own
library (PyPI tls-sig-api-v2, module TLSSigAPIv2): valid, expired, tampered, another app's
key, another identifier, another SDKAppID, a userbuf ticket, garbage."""

from __future__ import annotations

import base64
import json
import types
import zlib

import pytest
import TLSSigAPIv2

from roomhub.server.dialects import usersig
from roomhub.server.dialects.usersig import UserSigError, verify

# The demo SDKAppID and key hard-coded in the vendor's SDKs (study §2.2)
SDKAPPID = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
OTHER_KEY = "0" * 64
PYTHON_STYLE = (
    "eJyrVgrxCdYrSy1SslJQMtIzUNJRAItkpqTmlWSmZUIkElNyM-Myi0uKEkvyi2BKilOyEwsKMlOACgxNDKAAKpdaUZ"
    "BZlAqSMTU1NUKIl2TmgkXN0dQXZ6aD7PFyrqpIzHOz8AsJiUgsNcnVNsqwLC8zT4-0yqv0yy7ONajINfRzjQg1Mjex"
    "VaoFANTGNgc_"
)
GO_STYLE = (
    "eAEBsgBN-3siVExTLnZlciI6IjIuMCIsIlRMUy5pZGVudGlmaWVyIjoiYWRtaW5pc3RyYXRvciIsIlRMUy5zZGthcH"
    "BpZCI6MTQwMDAwMDAwMCwiVExTLmV4cGlyZSI6MTU1NTIwMDAsIlRMUy50aW1lIjoxNzAwMDAwMDAwLCJUTFMuc2ln"
    "IjoiSkN6eGFuRjhOVFRYYXU0bSsyaDl3djdnWUpueU5rc20weG0xTkVYVTI3ND0ifQqDHzSx"
)
VECTOR_END = 1700000000 + 15552000  # TLS.time + TLS.expire


def check(sig: str, now: int, *, sdkappid: int = SDKAPPID, identifier: str = "administrator",
          key: str = KEY) -> None:  # fmt: skip
    verify(sig, sdkappid=sdkappid, identifier=identifier, secret_key=key, now=now)


def refused(sig: str, now: int, **kw: object) -> int:
    with pytest.raises(UserSigError) as caught:
        check(sig, now, **kw)  # type: ignore[arg-type]
    assert not sig or sig not in str(caught.value)  # never echoed
    code: int = caught.value.code
    return code


def mint(identifier: str, *, at: int, expire: int = 86400, sdkappid: int = SDKAPPID,
         key: str = KEY, monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    """A UserSig from the vendor's library, minted as if at Unix time `at` (its module's `time`
    replaced: it reads time.time())."""
    monkeypatch.setattr(TLSSigAPIv2, "time", types.SimpleNamespace(time=lambda: at))
    return TLSSigAPIv2.TLSSigAPIv2(sdkappid, key).gen_sig(identifier, expire)  # type: ignore[no-any-return]


def to_url(raw: bytes) -> str:
    """Base64 with the UserSig alphabet (`+/=` written `*-_`)."""
    return base64.b64encode(raw).decode().translate(str.maketrans("+/=", "*-_"))


def reencode(document: object, *, level: int = 6) -> str:
    return to_url(zlib.compress(json.dumps(document).encode(), level))


@pytest.mark.parametrize("sig", [PYTHON_STYLE, GO_STYLE], ids=["python", "go"])
def test_study_vectors(sig: str) -> None:
    document = usersig.decode(sig)
    assert document["TLS.sig"] == "JCzxanF8NTTXau4m+2h9wv7gYJnyNksm0xm1NEXU274="
    expected = usersig.signature(KEY, "administrator", SDKAPPID, 1700000000, 15552000)
    assert expected.hex() == "242cf16a717c3534d76aee26fb687dc2fee06099f2364b26d319b53445d4dbbe"
    check(sig, 1700000000)
    check(sig, VECTOR_END)  # valid at now <= time + expire
    assert refused(sig, VECTOR_END + 1) == usersig.EXPIRED
    assert refused(sig, 1700000000, identifier="admin") == usersig.IDENTIFIER_MISMATCH
    assert refused(sig, 1700000000, sdkappid=1400000001) == usersig.SDKAPPID_MISMATCH
    assert refused(sig, 1700000000, key=OTHER_KEY) == usersig.SIG_MISMATCH


def test_vendor_library_valid_and_expired(monkeypatch: pytest.MonkeyPatch) -> None:
    sig = mint("admin", at=1800000000, expire=600, monkeypatch=monkeypatch)
    check(sig, 1800000000, identifier="admin")
    check(sig, 1800000600, identifier="admin")
    assert refused(sig, 1800000601, identifier="admin") == usersig.EXPIRED
    # the default lifetime (180 days) and an identifier outside ASCII
    default = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig("管理员")
    check(default, 1800000000 + 180 * 86400, identifier="管理员")


def test_vendor_library_refusals(monkeypatch: pytest.MonkeyPatch) -> None:
    at = 1800000000
    sig = mint("admin", at=at, monkeypatch=monkeypatch)
    # another app's key signing a ticket that names this app
    forged = mint("admin", at=at, key=OTHER_KEY, monkeypatch=monkeypatch)
    assert refused(forged, at, identifier="admin") == usersig.SIG_MISMATCH
    # made for another identifier, another SDKAppID (with that app's key)
    assert refused(sig, at, identifier="administrator") == usersig.IDENTIFIER_MISMATCH
    other_app = mint("admin", at=at, sdkappid=1400000001, key=OTHER_KEY, monkeypatch=monkeypatch)
    assert refused(other_app, at, identifier="admin") == usersig.SDKAPPID_MISMATCH
    # a PrivateMapKey-style ticket (userbuf) is not a UserSig, even with the right key
    with_buf = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig_with_userbuf("admin", 600, b"abc")
    assert refused(with_buf, at, identifier="admin") == usersig.SIG_MISMATCH


def test_tampered_tickets(monkeypatch: pytest.MonkeyPatch) -> None:
    at = 1800000000
    document = usersig.decode(mint("admin", at=at, expire=600, monkeypatch=monkeypatch))
    # re-encoded as another minter would (other level, same fields): still valid
    check(reencode(document, level=0), at, identifier="admin")
    # a longer lifetime, a later time, another identifier: the HMAC no longer matches
    for name, value in (("TLS.expire", 10**9), ("TLS.time", at + 10**6)):
        assert refused(reencode({**document, name: value}), at, identifier="admin") == (
            usersig.SIG_MISMATCH
        )
    renamed = reencode({**document, "TLS.identifier": "root"})
    assert refused(renamed, at, identifier="root") == usersig.SIG_MISMATCH
    # a flipped bit of the signature
    raw = bytearray(base64.b64decode(document["TLS.sig"]))
    raw[0] ^= 1
    flipped = reencode({**document, "TLS.sig": base64.b64encode(bytes(raw)).decode()})
    assert refused(flipped, at, identifier="admin") == usersig.SIG_MISMATCH


@pytest.mark.parametrize(
    "sig",
    [
        "",
        "not a usersig",
        PYTHON_STYLE[:-10],  # truncated
        PYTHON_STYLE[:40] + "A" + PYTHON_STYLE[41:],  # garbled
        PYTHON_STYLE + "AAAA",  # trailing bytes after the zlib stream
        "é" * 8,
        "A" * (usersig.MAX_USERSIG_CHARS + 4),
        reencode(["a list"]),
        reencode({"TLS.identifier": "administrator"}),  # fields missing
        reencode({**usersig.decode(PYTHON_STYLE), "TLS.sdkappid": "1400000000"}),
        reencode({**usersig.decode(PYTHON_STYLE), "TLS.time": 1700000000.0}),
        reencode({**usersig.decode(PYTHON_STYLE), "TLS.expire": True}),
        reencode({**usersig.decode(PYTHON_STYLE), "TLS.sig": "!!"}),
        # a zip bomb: inflates far past any ticket
        to_url(zlib.compress(b" " * 10**6)),
    ],
)
def test_malformed(sig: str) -> None:
    assert refused(sig, 1700000000) == usersig.MALFORMED
