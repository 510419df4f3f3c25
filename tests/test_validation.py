"""cellkit._validation: Keras-style argument checks and dataclass field rules."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cellkit._validation import (
    check_bool,
    check_choice,
    check_fields,
    check_float,
    check_int,
    check_str,
    check_table,
    rule,
)


class _Custom(ValueError):
    pass


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_int(True, "epochs", minimum=1), "epochs must be an int >= 1. Received: epochs=True"),
        (lambda: check_int(2.0, "seed"), "seed must be an int. Received: seed=2.0"),
        (lambda: check_float(math.inf, "lr"), "lr must be a finite number in (0, inf). Received: lr=inf"),
        (lambda: check_float(1.0, "p", high=1.0, low_open=False, high_open=True),
         "p must be a finite number in [0, 1). Received: p=1.0"),
        (lambda: check_choice("adamm", "optimizer", ("lion", "adam")),
         "optimizer must be one of ['lion', 'adam'] (did you mean 'adam'?). Received: optimizer='adamm'"),
        (lambda: check_str("", "name", label="phases[0].name"),
         "phases[0].name must be a non-empty string. Received: name=''"),
        (lambda: check_bool(1, "flag"), "flag must be true or false. Received: flag=1"),
        (lambda: check_table(["a"], "head", of="head options"),
         "head must be a table of head options. Received: head=['a']"),
    ],
)
def test_messages_say_what_was_expected_then_what_was_received(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert str(info.value) == message


def test_values_come_back_canonical_and_errors_have_the_class_asked_for():
    assert check_int(3, "n", minimum=0) == 3 and isinstance(check_float(2, "x"), float)
    assert check_choice("ADAMW", "optimizer", ("adamw",)) == "adamw"
    assert check_table({"a": 1}, "t") == {"a": 1}
    with pytest.raises(_Custom):
        check_int(-1, "n", minimum=0, error=_Custom)


def test_field_rules_check_every_field_and_allow_none_where_it_is_the_default():
    @dataclasses.dataclass(frozen=True)
    class Settings:
        epochs: int = dataclasses.field(default=1, metadata=rule(check_int, minimum=1))
        rate: float | None = dataclasses.field(default=None, metadata=rule(check_float, high=1.0))
        mode: str = dataclasses.field(default="a", metadata=rule(check_choice, choices=("a", "b")))

        def __post_init__(self):
            check_fields(self, prefix="run.", error=_Custom)

    assert Settings(rate=None, mode="B") == Settings(1, None, "b")
    assert Settings(rate=1).rate == 1.0
    with pytest.raises(_Custom, match=r"^run\.rate must be a finite number in \(0, 1\]\. Received: rate=2"):
        Settings(rate=2)
