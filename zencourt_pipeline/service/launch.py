"""Launching an operator action's run from the HTTP service, through the Dagster webserver.

The service does not load the code location (it must not import defs/): it asks the webserver,
which has it (workspace.yaml), to launch the job by name with the run config and tags, exactly as
the UI's Launchpad does, through the GraphQL mutation `launchPipelineExecution` (the one
`dagster_graphql.DagsterGraphQLClient.submit_job_execution` sends). The run then goes through the
instance's run coordinator (queued, started by the daemon) like every other run.

A batch whose partition the retention sensor removed (`defs/retention.py`: ended long ago) gets
it back first, through the mutation `addDynamicPartition` (an existing one answers
`DuplicateDynamicPartitionError`, which is fine): a run of a missing partition would fail.

`Launcher` is the interface the routes use; `GraphQLLauncher` is the only implementation with a
network edge (its `httpx.Client`, injectable: tests hand it a recorder or the webserver's ASGI app).
With no `DAGSTER_WEBSERVER_URL`, the actions answer 503 (no launcher).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import httpx

from zencourt_pipeline.config import Settings
from zencourt_pipeline.pipeline.actions import LaunchRequest

logger = logging.getLogger("zencourt_pipeline.service.launch")

LOCATION_NAME = "zencourt_pipeline"  # workspace.yaml's location_name
REPOSITORY_NAME = "__repository__"  # the repository of a `Definitions` object
GRAPHQL_TIMEOUT_SECONDS = 30.0
SUCCESS_TYPES = frozenset({"LaunchRunSuccess", "LaunchPipelineRunSuccess"})
PARTITIONS_DEF_NAME = "batches"  # defs/partitions.py's batch_partitions (the service never imports defs/)
PARTITION_PRESENT_TYPES = frozenset({"AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"})

ADD_PARTITION_MUTATION = """
mutation ZencourtAddPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(
    repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName, partitionKey: $partitionKey
  ) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

LAUNCH_MUTATION = """
mutation ZencourtLaunchRun($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchPipelineRunSuccess { run { runId } }
    ... on PipelineConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on PipelineRunConflict { message }
    ... on ConflictingExecutionParamsError { message }
    ... on PresetNotFoundError { message }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
  }
}
"""


class LaunchFailed(Exception):
    """The webserver could not be reached or did not launch the run (the message says why)."""


class Launcher(Protocol):
    """Launches one run of a job for a batch partition; returns the run id or raises LaunchFailed."""

    def launch(self, request: LaunchRequest) -> str:
        """Launch the run; its id, or LaunchFailed."""
        ...

    def close(self) -> None:
        """Release what the launcher holds (its HTTP client)."""
        ...


def execution_params(request: LaunchRequest, location: str = LOCATION_NAME, repository: str = REPOSITORY_NAME) -> dict[str, Any]:
    """The `ExecutionParams` of the launch mutation: the job, its run config and tags."""
    return {
        "selector": {
            "repositoryLocationName": location,
            "repositoryName": repository,
            "pipelineName": request.job_name,
        },
        "runConfigData": request.run_config,
        "mode": "default",
        "executionMetadata": {"tags": [{"key": key, "value": value} for key, value in request.tags.items()]},
    }


class GraphQLLauncher:
    """Launches runs through the webserver's GraphQL API at `url` (e.g. http://webserver:3000)."""

    def __init__(self, url: str, *, client: httpx.Client | None = None, location: str = LOCATION_NAME):
        self.endpoint = url.rstrip("/") + "/graphql"
        self.location = location
        self._owns_client = client is None
        self.client = client if client is not None else httpx.Client(timeout=GRAPHQL_TIMEOUT_SECONDS)

    def launch(self, request: LaunchRequest) -> str:
        """Add the batch's partition back when it was removed, then send the launch mutation;
        the new run's id, or LaunchFailed."""
        self.ensure_partition(request.batch_id)
        variables = {"executionParams": execution_params(request, self.location)}
        result = self._mutate(LAUNCH_MUTATION, variables, "launchPipelineExecution")
        kind = result.get("__typename")
        if kind in SUCCESS_TYPES:
            return result["run"]["runId"]
        message = result.get("message") or "; ".join(e.get("message", "") for e in result.get("errors") or [])
        raise LaunchFailed(f"{kind}: {message or 'run not launched'}")

    def ensure_partition(self, batch_id: str) -> None:
        """The batch's partition exists after this (added when the retention sensor removed it)."""
        variables = {
            "repositorySelector": {"repositoryLocationName": self.location, "repositoryName": REPOSITORY_NAME},
            "partitionsDefName": PARTITIONS_DEF_NAME,
            "partitionKey": batch_id,
        }
        result = self._mutate(ADD_PARTITION_MUTATION, variables, "addDynamicPartition")
        kind = result.get("__typename")
        if kind not in PARTITION_PRESENT_TYPES:
            raise LaunchFailed(f"{kind}: {result.get('message') or 'partition not added'}")
        if kind == "AddDynamicPartitionSuccess":
            logger.info("partition added back for an operator action", extra={"batchId": batch_id})

    def _mutate(self, query: str, variables: dict[str, Any], field: str) -> dict[str, Any]:
        """POST one GraphQL mutation; its result object, or LaunchFailed."""
        try:
            response = self.client.post(self.endpoint, json={"query": query, "variables": variables})
        except httpx.HTTPError as exc:
            raise LaunchFailed(f"the Dagster webserver is unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise LaunchFailed(f"the Dagster webserver answered HTTP {response.status_code}")
        try:
            result = response.json()["data"][field]
            if not isinstance(result, dict):
                raise TypeError(field)
        except (ValueError, KeyError, TypeError):
            raise LaunchFailed(f"unexpected GraphQL answer: {str(response.text)[:200]}") from None
        return result

    def close(self) -> None:
        """Close the HTTP client when this launcher made it."""
        if self._owns_client:
            self.client.close()


def launcher_from_settings(settings: Settings) -> GraphQLLauncher | None:
    """A launcher on `DAGSTER_WEBSERVER_URL`, or None when it is not set (the actions answer 503)."""
    if not settings.dagster_webserver_url:
        return None
    return GraphQLLauncher(settings.dagster_webserver_url)
