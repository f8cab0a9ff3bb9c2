"""The branding profile (issue 15 point 3): validated fields, a batch's override over the
workspace's profile, the contact line (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from zencourt_pipeline.media.branding import Branding


def test_fields_are_validated_and_camel_case_keys_are_accepted():
    profile = Branding.model_validate(
        {"agentName": " Jane Doe ", "phone": "+1 (555) 010-0100", "email": "jane@acme.example", "website": "acme.example",
         "primaryColor": "#0b4f4a"}
    )  # fmt: skip
    assert (profile.agent_name, profile.primary_color) == ("Jane Doe", "#0B4F4A")
    for bad in ({"email": "not an email"}, {"phone": "call me"}, {"primaryColor": "teal"}, {"website": "x y"},
                {"agentName": ""}, {"fax": "1"}):  # fmt: skip
        with pytest.raises(ValidationError):
            Branding.model_validate(bad)


def test_a_batch_override_wins_field_by_field_over_the_workspace_profile():
    workspace = Branding(agent_name="Jane Doe", brokerage="Acme Realty", phone="555-0100", logo=Path("/l.png"))
    batch = Branding(agent_name="Sam Roe", email="sam@acme.example")
    merged = batch.over(workspace)
    assert (merged.agent_name, merged.brokerage, merged.phone, merged.email) == ("Sam Roe", "Acme Realty", "555-0100", "sam@acme.example")
    assert merged.logo == Path("/l.png") and batch.over(None) == batch and Branding().over(workspace) == workspace


def test_the_contact_line_and_whether_a_profile_brands_anything():
    assert Branding(phone="555-0100", website="acme.example").contact_line() == "555-0100  ·  acme.example"
    assert Branding().contact_line() is None and not Branding().names_agent
    assert Branding(primary_color="#FFFFFF").names_agent is False  # colours alone draw nothing
    assert Branding(brokerage="Acme").names_agent and Branding(logo=Path("/l.png")).names_agent
