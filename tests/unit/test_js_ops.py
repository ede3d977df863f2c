"""The JS client's op table (clients/js/src/ops.generated.ts) is the generator's output for
today's roomhub.protocol.ops.OPS: an op added or changed without regenerating fails here (and
`tsc` then fails if the generated table names a method RoomClient does not have)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[2] / "clients" / "js" / "scripts" / "gen_ops.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("roomhub_js_gen_ops", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_ops_table_is_the_generators_output() -> None:
    gen = load_generator()
    assert gen.TARGET.read_text() == gen.render(), (
        "clients/js/src/ops.generated.ts is stale: run "
        ".venv/bin/python clients/js/scripts/gen_ops.py and commit it"
    )


def test_every_op_with_a_method_is_in_the_table() -> None:
    from roomhub.protocol.ops import OPS

    gen = load_generator()
    text = gen.render()
    for name, spec in OPS.items():
        if spec.method is None:
            assert f'"{name}": {{' not in text  # auth: the client's own handshake
            continue
        assert f'op: "{name}",\n    method: "{gen.js_method(spec.method)}",' in text
        for field in spec.args.model_fields:
            assert f'"{gen.camel(field)}": "{field}"' in text


def test_js_method_names_follow_the_contract() -> None:
    gen = load_generator()
    assert gen.js_method("accept") == "acceptInvitation"
    assert gen.js_method("decline") == "declineInvitation"
    assert gen.js_method("leave") == "leaveRoom"
    assert gen.js_method("history") == "history"
    assert gen.js_method("cancel_invitations") == "cancelInvitations"
    assert gen.camel("after_seq") == "afterSeq"
