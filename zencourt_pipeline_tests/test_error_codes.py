"""`ErrorCode` (zencourt_pipeline/errors.py) is the one list of error codes: docs/errors.md's list
(near "Error codes:") and docs/contract.md's error-code table name every member, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zencourt_pipeline.errors import CodedError, ErrorCode

ROOT = Path(__file__).resolve().parents[1]
CODE = re.compile(r"`([A-Z][A-Z0-9_]{2,})`")  # a backticked, code-like token


def errors_page_codes() -> list[str]:
    """The backticked codes of docs/errors.md's list: from "Error codes:" to the next blank line."""
    text = (ROOT / "docs" / "errors.md").read_text()
    start = text.index("\nError codes:")
    end = text.index("\n\n", start + 1)
    return CODE.findall(text[start:end])


def contract_codes() -> list[str]:
    """The first column of docs/contract.md's error-code table (`| code | on | meaning |`)."""
    lines = (ROOT / "docs" / "contract.md").read_text().splitlines()
    start = lines.index("| code | on | meaning |")
    codes = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first, meaning = line.split("|")[1], line.split("|")[3]
        assert meaning.strip(), f"no meaning for {first.strip()}"
        codes += CODE.findall(first)
    return codes


MEMBERS = {code.value for code in ErrorCode}


@pytest.mark.parametrize("source", [errors_page_codes, contract_codes], ids=["docs/errors.md", "docs/contract.md"])
def test_the_docs_list_every_error_code_and_only_those(source):
    listed = source()
    assert sorted(MEMBERS - set(listed)) == [], "members missing from the list"
    assert sorted(set(listed) - MEMBERS) == [], "codes in the list that are not ErrorCode members"


def test_the_contract_table_names_each_code_once():
    codes = contract_codes()
    assert len(codes) == len(set(codes)) == len(MEMBERS)


def test_members_are_their_strings_and_coded_errors_carry_them():
    assert all(code == code.value == str(code) for code in ErrorCode)
    error = CodedError("INVALID_INPUT", "bad photo")
    assert error.code is ErrorCode.INVALID_INPUT and str(error) == "INVALID_INPUT: bad photo"
    assert ErrorCode.generation_failed("runway") is ErrorCode.RUNWAY_GENERATION_FAILED


def test_the_pipeline_errors_are_coded_errors():
    from zencourt_pipeline.media.errors import MediaError
    from zencourt_pipeline.pipeline.intake import BatchRejected
    from zencourt_pipeline.pipeline.regenerate import RegenerationRefused
    from zencourt_pipeline.storage.base import StorageError

    for cls in (MediaError, StorageError, BatchRejected, RegenerationRefused):
        assert issubclass(cls, CodedError)
        assert "__init__" not in vars(cls), f"{cls.__name__} re-declares code/message"
        error = cls(ErrorCode.COMPOSITION_FAILED, "x")
        assert (error.code, error.message) == (ErrorCode.COMPOSITION_FAILED, "x")
