"""What the fake Runway API (2024-11-06) accepts and how its tasks behave: the constraints of
POST /v1/image_to_video (gen4_turbo) as the real API checks them, `RunwayScript` (one task's
scripted behaviour) and `FakeTask` (one task's state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from zencourt_pipeline_tests.fakes.server import image_size_of_data_uri

API_VERSION = "2024-11-06"
MODELS = {"gen4_turbo", "gen3a_turbo", "gen4.5", "veo3", "veo3.1", "veo3.1_fast"}
RATIOS = {"1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"}
TOP_LEVEL_FIELDS = {"model", "promptImage", "promptText", "ratio", "duration", "seed", "contentModeration"}
UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
DATA_URI_MAX = 5_242_880


@dataclass
class RunwayScript:
    """How one task behaves.

    outcome: "succeed" | "fail" | "cancel" (ends CANCELLED by itself).
    statuses: step mode: the task's n-th GET answers statuses[n] ("PENDING", "THROTTLED",
        "RUNNING"); once they are used up it is finished. None = time mode (`latency`).
    latency: seconds from create to finished in time mode (None = the fake's default).
    throttled: in time mode, spend part of the time THROTTLED.
    hold: stay RUNNING until `fake.release(task_id)`.
    output: "ok" | "truncated" (valid HTTP, cut MP4) | "short_body" (connection dropped mid-body)
        | "wrong_size" (a valid 640x360 MP4) | "not_mp4" (an HTML page).
    expire: None | "first_download" (a URL serves one download, then 403) | seconds (URL TTL).
        With any expiry each task GET hands out a fresh URL.
    expired_initially: how many of the first URLs handed out are already dead (403).
    """

    outcome: str = "succeed"
    failure_code: str | None = None
    failure: str = "The generation failed."
    statuses: list[str] | None = None
    latency: float | None = None
    throttled: bool = False
    hold: bool = False
    output: str = "ok"
    expire: str | float | None = None
    expired_initially: int = 0


@dataclass
class FakeTask:
    id: str
    body: dict[str, Any]
    script: RunwayScript
    created_at: float
    created_iso: str
    gets: int = 0
    released: bool = False
    final: str | None = None  # SUCCEEDED | FAILED | CANCELLED once finished
    deleted: bool = False
    tokens: list[str] = field(default_factory=list)
    expired_left: int = 0


def _issue(loc: list[Any], message: str, code: str = "invalid") -> dict[str, Any]:
    return {"path": loc, "message": message, "code": code}


def _image_uri_issues(value: Any, loc: list[Any]) -> list[dict[str, Any]]:
    if not isinstance(value, str):
        return [_issue(loc, "Expected string")]
    if value.startswith("https://"):
        if not 13 <= len(value) <= 2048:
            return [_issue(loc, "HTTPS URL must be 13 to 2048 characters")]
        host = urlsplit(value).hostname or ""
        if not host or host.replace(".", "").isdigit() or ":" in host:
            return [_issue(loc, "URL must use a domain name, not an IP address")]
        return []
    if value.startswith("runway://"):
        return [] if 13 <= len(value) <= 5000 else [_issue(loc, "Runway URI must be 13 to 5000 characters")]
    if value.startswith("data:image/"):
        if not 13 <= len(value) <= DATA_URI_MAX:
            return [_issue(loc, f"Data URI must be 13 to {DATA_URI_MAX} characters", "too_big")]
        if image_size_of_data_uri(value) is None:
            return [_issue(loc, "Data URI does not contain a decodable image", "invalid_asset")]
        return []
    return [_issue(loc, "Expected an HTTPS URL, a runway:// URI or a data:image/ URI")]


def validate_image_to_video(body: Any) -> list[dict[str, Any]]:
    """Issues with a POST /v1/image_to_video body (the gen4_turbo constraints); [] when valid."""
    if not isinstance(body, dict):
        return [_issue([], "Expected object")]
    issues: list[dict[str, Any]] = []
    for key in sorted(set(body) - TOP_LEVEL_FIELDS):
        issues.append(_issue([key], f"Unrecognized key {key!r}", "unrecognized_keys"))
    model = body.get("model")
    if model not in MODELS:
        issues.append(_issue(["model"], f"Invalid model {model!r}"))
    ratio = body.get("ratio")
    if ratio not in RATIOS:
        issues.append(_issue(["ratio"], f"Invalid enum value {ratio!r}; expected one of {sorted(RATIOS)}"))
    image = body.get("promptImage")
    if image is None:
        issues.append(_issue(["promptImage"], "Required"))
    elif isinstance(image, list):
        if len(image) != 1:
            issues.append(_issue(["promptImage"], "Exactly one prompt image is supported"))
        for i, item in enumerate(image):
            if not isinstance(item, dict) or set(item) - {"uri", "position"}:
                issues.append(_issue(["promptImage", i], "Expected {uri, position}"))
                continue
            if item.get("position") != "first":
                issues.append(_issue(["promptImage", i, "position"], 'Expected "first"'))
            issues += _image_uri_issues(item.get("uri"), ["promptImage", i, "uri"])
    else:
        issues += _image_uri_issues(image, ["promptImage"])
    if "promptText" in body:
        text = body["promptText"]
        units = len(text.encode("utf-16-le")) // 2 if isinstance(text, str) else -1
        if not isinstance(text, str) or not 1 <= units <= 1000:
            issues.append(_issue(["promptText"], "Expected a string of 1 to 1000 characters"))
    if "duration" in body:
        d = body["duration"]
        if isinstance(d, bool) or not isinstance(d, int) or not 2 <= d <= 10:
            issues.append(_issue(["duration"], "Expected an integer from 2 to 10"))
    if "seed" in body:
        s = body["seed"]
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= 4_294_967_295:
            issues.append(_issue(["seed"], "Expected an integer from 0 to 4294967295"))
    if "contentModeration" in body:
        cm = body["contentModeration"]
        if not isinstance(cm, dict) or cm.get("publicFigureThreshold", "auto") not in ("auto", "low"):
            issues.append(_issue(["contentModeration"], "Invalid content moderation settings"))
    return issues
