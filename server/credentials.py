"""The vendors' credentials of each app (docs/dialects.md): the `[apps.KEY.imkit]`,
`[apps.KEY.tencent]` and `[apps.KEY.netease]` tables of the config file, as `Settings.dialects`,
and `DialectKeys`, the lookups the dialects authenticate with, built once.

Secrets are `repr=False` and every message here names keys, never values."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

NonEmpty = Annotated[StrictStr, Field(min_length=1)]
Secret = Annotated[StrictStr, Field(min_length=1, repr=False)]
VENDORS = ("imkit", "tencent", "netease")


class _Credentials(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class ImkitCredentials(_Credentials):
    api_key: Secret
    """IM-API-KEY: the platform key, acting as the app's server; IM-CLIENT-KEY is the app key"""


class TencentCredentials(_Credentials):
    sdkappid: Annotated[StrictInt, Field(gt=0)]
    """the SDKAppID (query `sdkappid`), unique across apps"""
    secret_key: Secret
    """the SecretKey UserSigs (TLSSigAPIv2) are signed with"""
    admins: Annotated[list[NonEmpty], Field(min_length=1)]
    """the `identifier`s allowed to call (the app's administrator accounts)"""


class NeteaseCredentials(_Credentials):
    app_key: NonEmpty
    """the AppKey header, unique across apps"""
    app_secret: Secret
    """the AppSecret of CheckSum = sha1(AppSecret + Nonce + CurTime)"""


class AppDialects(_Credentials):
    """One app's credentials per vendor; a vendor without them does not serve the app."""

    imkit: ImkitCredentials | None = None
    tencent: TencentCredentials | None = None
    netease: NeteaseCredentials | None = None


MODELS: dict[str, type[_Credentials]] = {
    "imkit": ImkitCredentials,
    "tencent": TencentCredentials,
    "netease": NeteaseCredentials,
}


def duplicates(dialects: Mapping[str, AppDialects]) -> str | None:
    """Why the credentials are ambiguous across apps (None: they are not). The message names
    the file keys, never a secret."""
    keys = (("imkit", "api_key"), ("tencent", "sdkappid"), ("netease", "app_key"))
    for vendor, field in keys:
        seen: dict[object, str] = {}
        for app, creds in dialects.items():
            table = getattr(creds, vendor)
            if table is None:
                continue
            value = getattr(table, field)
            if value in seen:
                shown = f" {value}" if field == "sdkappid" else ""
                return (
                    f"apps.{app}.{vendor}.{field}: the same {field}{shown} as"
                    f" apps.{seen[value]}.{vendor}.{field}; each app needs its own"
                )
            seen[value] = app
    return None


def secrets_of(dialects: Mapping[str, AppDialects]) -> Iterator[str]:
    """Every vendor secret, for the logs' redaction."""
    for creds in dialects.values():
        if creds.imkit is not None:
            yield creds.imkit.api_key
        if creds.tencent is not None:
            yield creds.tencent.secret_key
        if creds.netease is not None:
            yield creds.netease.app_secret


class DialectKeys:
    """The app a vendor request is for, from its credentials: built once per node (from
    `Settings.dialects`), answered without I/O. Secrets are compared in constant time."""

    def __init__(self, dialects: Mapping[str, AppDialects]) -> None:
        self.dialects = dict(dialects)
        self._imkit = [(app, c.imkit) for app, c in self.dialects.items() if c.imkit]
        self._tencent = {c.tencent.sdkappid: (app, c.tencent) for app, c in self._with("tencent")}
        self._netease = {c.netease.app_key: (app, c.netease) for app, c in self._with("netease")}

    def _with(self, vendor: str) -> list[tuple[str, AppDialects]]:
        return [(app, c) for app, c in self.dialects.items() if getattr(c, vendor) is not None]

    def imkit(self, app: str) -> ImkitCredentials | None:
        """The app's IMKIT credentials (the IM-CLIENT-KEY path: the app key names the app)."""
        creds = self.dialects.get(app)
        return creds.imkit if creds is not None else None

    def by_imkit_api_key(self, api_key: str) -> str | None:
        """The app whose IM-API-KEY this is, else None. Every app's key is compared, in
        constant time, so the answer's timing tells nothing about the keys."""
        given = api_key.encode()
        found = None
        for app, creds in self._imkit:
            if hmac.compare_digest(given, creds.api_key.encode()):
                found = app
        return found

    def by_sdkappid(self, sdkappid: int) -> tuple[str, TencentCredentials] | None:
        """The app with this Tencent SDKAppID and its credentials, else None."""
        return self._tencent.get(sdkappid)

    def by_netease_app_key(self, app_key: str) -> tuple[str, NeteaseCredentials] | None:
        """The app with this NetEase AppKey and its credentials, else None (the AppKey is an
        identifier; its CheckSum is what the dialect compares, with `hmac.compare_digest`)."""
        return self._netease.get(app_key)
