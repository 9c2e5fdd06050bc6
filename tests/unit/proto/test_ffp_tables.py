"""The Full Feature Phase machine's tables: complete, consistent, and the ones it uses.

The machine's behaviour is tested through PDUs in ``test_ffp*.py``; these check the
tables themselves, each entry, so that a row added or lost shows up here first.
"""

from __future__ import annotations

import pytest

from iscsikit.proto.constants import TARGET_OPCODES, AsyncEvent, Opcode, TmfFunction
from iscsikit.proto.ffp import FullFeatureConnection, Timers
from iscsikit.proto.ffp_control import _OTHER_TMF, _TMF_RULES, _tmf_timeout
from iscsikit.proto.ffp_receive import _HANDLERS
from iscsikit.proto.ffp_renegotiation import _ASYNC_ACTIONS


def test_every_target_opcode_but_data_in_and_login_has_a_handler() -> None:
    expected = {int(op) for op in TARGET_OPCODES} - {Opcode.SCSI_DATA_IN, Opcode.LOGIN_RESPONSE}
    assert set(_HANDLERS) == expected
    assert all(type(key) is int for key in _HANDLERS)  # plain ints: the lookup is hot


def test_handlers_are_the_connections_methods() -> None:
    for handler in _HANDLERS.values():
        assert getattr(FullFeatureConnection, handler.__name__) is handler


@pytest.mark.parametrize("function", list(TmfFunction))
def test_every_tmf_has_a_timeout_field(function: TmfFunction) -> None:
    timers = Timers(abort_timeout=1.0, lu_reset_timeout=2.0, tgt_reset_timeout=3.0)
    assert _tmf_timeout(function, timers) in (1.0, 2.0, 3.0)


@pytest.mark.parametrize("function", list(TmfFunction))
def test_escalation_ends_by_dropping_the_connection(function: TmfFunction) -> None:
    seen = [function]
    step = _TMF_RULES.get(function, _OTHER_TMF).escalates_to
    while step is not None:
        assert step not in seen, f"escalation cycle {[*seen, step]}"
        seen.append(step)
        step = _TMF_RULES.get(step, _OTHER_TMF).escalates_to
    assert len(seen) <= 3  # abort → LUN reset → target reset at most


def test_escalation_widens_the_scope() -> None:
    order = ["none", "task", "lun", "target"]
    for function, rule in _TMF_RULES.items():
        if rule.escalates_to is not None:
            wider = _TMF_RULES[rule.escalates_to].ends
            assert order.index(wider) > order.index(rule.ends), function


def test_async_actions_leave_scsi_and_vendor_events_to_the_caller() -> None:
    assert AsyncEvent.SCSI_EVENT not in _ASYNC_ACTIONS
    assert AsyncEvent.VENDOR_SPECIFIC not in _ASYNC_ACTIONS
    assert set(_ASYNC_ACTIONS) == {1, 2, 3, 4}
