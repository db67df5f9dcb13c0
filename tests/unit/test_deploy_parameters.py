"""`photopipe up --parameter NAME=VALUE`: the template's parameters can be set (not those the deploy sets for this
machine), a deployed stack keeps what it was given, and what it was given is part of what it is deployed from."""

from __future__ import annotations

import pytest

from photopipe_infra.deploy import (
    BadParameter,
    deploy_fingerprint,
    kept_parameters,
    parse_parameters,
    template_parameters,
)


def test_the_templates_parameters_are_read_from_its_parameters_section() -> None:
    names = template_parameters()
    assert {"Variants", "WebpQuality", "MaxInFlight", "Target", "LocalEndpoint"} <= set(names)
    assert "MediaBucket" not in names and "ApiUrl" not in names  # a resource, an output
    assert len(names) == len(set(names)) > 20


def test_a_parameter_is_name_equals_value_of_the_template_and_not_one_the_deploy_sets() -> None:
    allowed = template_parameters()
    given = parse_parameters(["Variants=thumb:256,xl:3000", "WebpQuality=70", "Variants=thumb:128"], allowed)
    assert given == {"Variants": "thumb:128", "WebpQuality": "70"}  # the last of a name wins
    for wrong, message in (
        ("Variants", "is not NAME=VALUE"),
        ("=3", "is not NAME=VALUE"),
        ("Varients=thumb:256", "is not a parameter that can be set here"),
        ("LocalEndpoint=http://elsewhere:4566", "is not a parameter that can be set here"),
        ("Variants=thumb:256, xl:3000", "without spaces or quotes"),
        ("Variants=thumb:256,\txl:3000", "without spaces or quotes"),
        ("AlarmTopicArn=", "must be given"),
    ):
        with pytest.raises(BadParameter, match=message):
            parse_parameters([wrong], allowed)


def test_a_stack_keeps_the_parameters_it_was_given_and_they_are_part_of_its_fingerprint() -> None:
    stack = {
        "Tags": [{"Key": "photopipe:source", "Value": "abc"}, {"Key": "photopipe:parameters", "Value": "Variants"}],
        "Parameters": [
            {"ParameterKey": "Variants", "ParameterValue": "thumb:256,xl:3000"},
            {"ParameterKey": "WebpQuality", "ParameterValue": "82"},  # not named in the tag: not kept
        ],
    }
    assert kept_parameters(stack) == {"Variants": "thumb:256,xl:3000"}
    assert kept_parameters({"Tags": [], "Parameters": []}) == {} and kept_parameters(None) == {}
    plain = deploy_fingerprint("abc", {})
    assert plain == "abc"  # a stack deployed without parameters keeps the fingerprint it had
    with_variants = deploy_fingerprint("abc", {"Variants": "thumb:256,xl:3000"})
    assert with_variants.startswith("abc-") and with_variants != deploy_fingerprint("abc", {"Variants": "thumb:256"})
    assert deploy_fingerprint("abc", {"A": "1", "B": "2"}) == deploy_fingerprint("abc", {"B": "2", "A": "1"})
