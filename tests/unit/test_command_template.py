"""Placeholders of the ``command`` task: parsing, rendering, values parsers read back."""

from __future__ import annotations

import ast
import shlex

import pytest
import yaml

from orchestrator.search_space.space import flatten
from orchestrator.tasks.command.template import (
    TemplateError,
    format_value,
    placeholders,
    render,
)


def test_placeholders_are_found_with_their_dotted_names():
    found = placeholders("-u optimizer.lr={optim.lr} w={loss.weight.giou} {env.DATA-ROOT}")
    assert [p.name for p in found] == ["optim.lr", "loss.weight.giou", "env.DATA-ROOT"]


def test_doubled_braces_are_literal_and_a_stray_brace_is_an_error():
    assert placeholders("{{not.a.placeholder}}") == []
    assert render("{{x}}={a}", {"a": 1}) == "{x}=1"
    with pytest.raises(TemplateError, match="stray '\\{' at position 3"):
        placeholders("lr={optim.lr")
    with pytest.raises(TemplateError, match="stray '}'"):
        placeholders("a}")
    with pytest.raises(TemplateError, match="stray"):
        placeholders("{optim lr}")  # a space is not part of a name


def test_unknown_placeholder_names_the_key():
    with pytest.raises(TemplateError, match=r"unknown placeholder \{optim\.lrr\}"):
        render("lr={optim.lrr}", {"optim.lr": 0.1})


@pytest.mark.parametrize("value", [1e-05, 2.5e-4, 0.0001, 3.0, 1e20, 123456789.123])
def test_floats_read_back_as_the_same_float_by_yaml_and_python(value):
    text = format_value(value)
    # RT-DETR's -u parser is PyYAML (1e-05 would be a string there); MMDetection's
    # --cfg-options evaluates Python literals
    assert yaml.safe_load(text) == value and isinstance(yaml.safe_load(text), float)
    assert ast.literal_eval(text) == value


def test_other_values():
    assert format_value(16) == "16"
    assert format_value(True) == "True" and yaml.safe_load("True") is True
    assert format_value("vfl") == "vfl"
    with pytest.raises(TemplateError, match="single value"):
        format_value({"giou": 2.0})


def test_shell_rendering_quotes_each_value():
    cmd = render("echo {a} {b}", {"a": "two words", "b": "$(rm -rf x)"}, quote=True)
    assert shlex.split(cmd) == ["echo", "two words", "$(rm -rf x)"]


def test_flatten_keeps_leaves():
    assert flatten({"loss": {"weight": {"giou": 2.0}, "cls": "vfl"}, "x": {}}) == {
        "loss.weight.giou": 2.0,
        "loss.cls": "vfl",
        "x": {},
    }
