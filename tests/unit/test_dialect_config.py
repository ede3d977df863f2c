"""The vendors' credentials per app ([apps.KEY.imkit|tencent|netease], Settings.dialects): the
schema, errors that name the file key and never a secret, `config check` redacting them, no
flag, and the lookups the dialects authenticate with (server/credentials.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from roomhub.server import cli
from roomhub.server.credentials import DialectKeys, TencentCredentials
from roomhub.server.settings import ConfigFileError, Settings

API_KEY = "SECRET-imkit-api-key-acme"
SECRET_KEY = "SECRET-tencent-key-acme"
APP_SECRET = "SECRET-netease-secret-acme"
FILE = f"""
[apps.acme]
secret = "SECRET-app-acme"
[apps.acme.imkit]
api_key = "{API_KEY}"
[apps.acme.tencent]
sdkappid = 1400000001
secret_key = "{SECRET_KEY}"
admins = ["administrator"]
[apps.acme.netease]
app_key = "netease-appkey-acme"
app_secret = "{APP_SECRET}"

[apps.beta]
secret = "SECRET-app-beta"
[apps.beta.tencent]
sdkappid = 1400000002
secret_key = "SECRET-tencent-key-beta"
admins = ["admin", "ops"]

[apps.plain]
secret = "SECRET-app-plain"
"""
BETA_IMKIT = '\n[apps.beta.imkit]\napi_key = "SECRET-imkit-api-key-beta"\n'


@pytest.fixture(autouse=True)
def no_roomhub_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*(f.env for f in cli.serve_flags()), cli.CONFIG_ENV, "ROOMHUB_DIALECTS"):
        monkeypatch.delenv(name, raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roomhub.toml"
    path.write_text(text)
    return path


def test_the_vendor_tables_load_next_to_the_app(tmp_path: Path) -> None:
    got = Settings.load(write(tmp_path, FILE))
    assert set(got.apps) == {"acme", "beta", "plain"}
    assert set(got.dialects) == {"acme", "beta"}  # plain: no vendor table, no dialect
    acme = got.dialects["acme"]
    assert acme.imkit is not None and acme.imkit.api_key == API_KEY
    assert acme.tencent == TencentCredentials(
        sdkappid=1400000001, secret_key=SECRET_KEY, admins=["administrator"]
    )
    assert acme.netease is not None and acme.netease.app_key == "netease-appkey-acme"
    assert got.dialects["beta"].imkit is None and got.dialects["beta"].netease is None
    assert {API_KEY, SECRET_KEY, APP_SECRET} <= set(got.secrets())  # redacted from the logs
    assert SECRET_KEY not in repr(got) and API_KEY not in repr(got)


BAD = [
    ("[apps.acme.imkit]\napikey = 'x'\n", "unknown key apps.acme.imkit.apikey (did you mean"
     " apps.acme.imkit.api_key?)"),
    ("[apps.acme.tencent]\nsdkappid = 1\nsecret_key = 'x'\nadmin = ['a']\n",
     "unknown key apps.acme.tencent.admin (did you mean apps.acme.tencent.admins?)"),
    ("[apps.acme.tencnet]\n", "unknown key apps.acme.tencnet (did you mean apps.acme.tencent?)"),
    ("imkit = 1\n", "apps.acme.imkit: must be a table"),
    ("[apps.acme.imkit]\n", "apps.acme.imkit.api_key: Field required"),
    ("[apps.acme.imkit]\napi_key = ''\n", "apps.acme.imkit.api_key: "),
    ("[apps.acme.tencent]\nsdkappid = '1400000001'\nsecret_key = 'x'\nadmins = ['a']\n",
     "apps.acme.tencent.sdkappid: Input should be a valid integer"),
    ("[apps.acme.tencent]\nsdkappid = 0\nsecret_key = 'x'\nadmins = ['a']\n",
     "apps.acme.tencent.sdkappid: Input should be greater than 0"),
    ("[apps.acme.tencent]\nsdkappid = 1\nsecret_key = 'x'\nadmins = []\n",
     "apps.acme.tencent.admins: "),
    ("[apps.acme.tencent]\nsdkappid = 1\nsecret_key = 'x'\nadmins = 'administrator'\n",
     "apps.acme.tencent.admins: Input should be a valid list"),
    ("[apps.acme.tencent]\nsdkappid = 1\nsecret_key = 'x'\nadmins = ['a', 7]\n",
     "apps.acme.tencent.admins.1: Input should be a valid string"),
    ("[apps.acme.tencent]\nsdkappid = 1\nadmins = ['a']\n",
     "apps.acme.tencent.secret_key: Field required"),
    ("[apps.acme.netease]\napp_key = 'k'\napp_secret = 5\n",
     "apps.acme.netease.app_secret: Input should be a valid string"),
]  # fmt: skip


@pytest.mark.parametrize(("table", "says"), BAD)
def test_a_bad_vendor_table_names_its_key_and_no_secret(
    tmp_path: Path, table: str, says: str
) -> None:
    path = write(tmp_path, f'[apps.acme]\nsecret = "SECRET-app"\n{table}')
    with pytest.raises(ConfigFileError) as raised:
        Settings.load(path)
    message = str(raised.value)
    assert message.startswith(f"config file {path}: ") and says in message, message
    assert "SECRET" not in message and "\n" not in message


DUPLICATES = [
    (
        FILE + BETA_IMKIT.replace("SECRET-imkit-api-key-beta", API_KEY),
        "apps.beta.imkit.api_key: the same api_key as apps.acme.imkit.api_key",
    ),
    (
        FILE.replace("1400000002", "1400000001"),
        "apps.beta.tencent.sdkappid: the same sdkappid 1400000001 as apps.acme.tencent.sdkappid",
    ),
    (
        FILE + '[apps.beta.netease]\napp_key = "netease-appkey-acme"\napp_secret = "SECRET-n"\n',
        "apps.beta.netease.app_key: the same app_key as apps.acme.netease.app_key",
    ),
]


@pytest.mark.parametrize(("text", "says"), DUPLICATES)
def test_a_vendor_id_names_one_app(tmp_path: Path, text: str, says: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as raised:
        Settings.load(path)
    message = str(raised.value)
    assert message == f"config file {path}: {says}; each app needs its own", message
    assert "SECRET" not in message and "netease-appkey" not in message


def test_config_check_shows_the_vendor_tables_with_their_secrets_redacted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["config", "check", str(write(tmp_path, FILE + BETA_IMKIT))])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "SECRET" not in out.out + out.err
    shown = tomllib.loads(out.out)["apps"]
    assert shown["acme"] == {
        "secret": "***",
        "imkit": {"api_key": "***"},
        "tencent": {"sdkappid": 1400000001, "secret_key": "***", "admins": ["administrator"]},
        "netease": {"app_key": "netease-appkey-acme", "app_secret": "***"},
    }
    assert shown["beta"]["imkit"] == {"api_key": "***"}
    assert "sdkappid = 1400000001  # file" in out.out


def test_no_flag_but_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "dialects" not in {flag.field for flag in cli.serve_flags()}
    assert all("dialect" not in flag.flag for flag in cli.serve_flags())
    monkeypatch.setenv("ROOMHUB_APPS", "acme=SECRET-app")
    monkeypatch.setenv(
        "ROOMHUB_DIALECTS",
        '{"acme": {"netease": {"app_key": "k1", "app_secret": "SECRET-env-netease"}}}',
    )
    got = Settings()
    assert got.dialects["acme"].netease is not None
    assert got.dialects["acme"].netease.app_secret == "SECRET-env-netease"


def test_vendor_credentials_for_a_missing_app_are_an_error() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(apps={"acme": "s"}, dialects={"gone": {"imkit": {"api_key": "SECRET-x"}}})
    message = cli.settings_error(raised.value)
    assert "'gone', which is not an app" in message and "SECRET" not in message


def test_the_lookups() -> None:
    settings = Settings(
        apps={"acme": "s1", "beta": "s2"},
        dialects={
            "acme": {
                "imkit": {"api_key": API_KEY},
                "tencent": {"sdkappid": 1400000001, "secret_key": SECRET_KEY, "admins": ["a"]},
                "netease": {"app_key": "nk-acme", "app_secret": APP_SECRET},
            },
            "beta": {"imkit": {"api_key": "SECRET-beta"}},
        },
    )
    keys = DialectKeys(settings.dialects)
    assert keys.by_imkit_api_key(API_KEY) == "acme"
    assert keys.by_imkit_api_key("SECRET-beta") == "beta"
    assert keys.by_imkit_api_key(API_KEY + "x") is None and keys.by_imkit_api_key("") is None
    assert keys.imkit("acme") == settings.dialects["acme"].imkit and keys.imkit("nope") is None
    found = keys.by_sdkappid(1400000001)
    assert found is not None and found[0] == "acme" and found[1].secret_key == SECRET_KEY
    assert keys.by_sdkappid(1400000002) is None
    netease = keys.by_netease_app_key("nk-acme")
    assert netease is not None and netease[0] == "acme" and netease[1].app_secret == APP_SECRET
    assert keys.by_netease_app_key("nk-beta") is None
    assert DialectKeys({}).by_imkit_api_key(API_KEY) is None
