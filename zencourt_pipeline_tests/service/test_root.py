"""`GET /` (no auth): the Node server's root answer (service name, version, uptime, links to
`/health` and the API description), and the API description it links to."""

from __future__ import annotations

from importlib import metadata


def test_root_answers_without_a_key_with_the_service_and_its_links(client):
    response = client.get("/")
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["success", "service", "version", "status", "uptimeSeconds", "links"]
    assert (body["success"], body["service"], body["status"]) == (True, "zencourt_pipeline", "running")
    assert body["version"] == metadata.version("zencourt_pipeline")
    assert isinstance(body["uptimeSeconds"], float) and body["uptimeSeconds"] >= 0
    assert body["links"] == {"health": "/health", "api": "/openapi.json"}
    assert client.get(body["links"]["health"]).status_code == 200


def test_the_api_description_lists_the_routes_without_a_key(client, auth):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/", "/health", "/video/generate", "/video/cancel", "/video/batches/{batch_id}"} <= set(paths)
    assert response.json()["info"]["version"] == metadata.version("zencourt_pipeline")
    # the key still guards the routes it describes
    assert client.post("/video/generate", json={"jobIds": ["x"]}).status_code == 401
