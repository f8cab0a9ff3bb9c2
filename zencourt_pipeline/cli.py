"""The `zencourt` console script."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from zencourt_pipeline.config import Settings
from zencourt_pipeline.domain import ApiScope, Orientation, WorkQueue, names


def _demo(args: argparse.Namespace) -> int:
    from zencourt_pipeline.demo import run_demo

    result = run_demo(orientation=args.orientation, timeout=args.timeout)
    print()
    print(f"batch {result.batch_id}: {result.status} in {result.seconds:.1f} s")
    if result.video_path:
        print(f"video: {result.video_path}")
    if result.thumbnail_path:
        print(f"thumbnail: {result.thumbnail_path}")
    for name, status, path in result.outputs:  # every output: the primary (above) and the other renditions
        print(f"output {name}: {path if status == 'completed' else status}")
    for room, status, path, thumb in result.clips:  # every room clip, published as soon as it was normalized
        print(f"clip {room}: {path if path else status}" + (f" (thumbnail {thumb})" if thumb else ""))
    if not result.composed:
        print("no listing video: ENABLE_FINAL_COMPOSITION is off (clip-first)")
    return 0 if result.succeeded else 1


def _db(args: argparse.Namespace) -> int:
    from zencourt_pipeline.db.database import AppDatabase

    settings = Settings.from_env()
    db = AppDatabase.connect(settings.resolved_database_url)
    if args.action == "upgrade":
        db.db.upgrade()
        from zencourt_pipeline.db.migrate import current_revision

        print(f"database at revision {current_revision(db.db.engine)}")
    return 0


def service_canceller(settings: Settings, db):
    """The canceller `zencourt serve` runs: providers configured from the environment with plain
    secret values (outside a Dagster run an EnvVar reference cannot be read), runs terminated
    through the instance of DAGSTER_HOME."""
    from zencourt_pipeline.defs.resources import build_resources
    from zencourt_pipeline.defs.runs import make_canceller

    generators = build_resources(settings, env_refs=False)["generators"]

    def instance():
        import dagster as dg

        return dg.DagsterInstance.get() if settings.dagster_home else None

    return make_canceller(db, lambda: generators.chain(db), instance)


def _serve(_args: argparse.Namespace) -> int:
    from zencourt_pipeline.defs.resources import build_resources
    from zencourt_pipeline.observability.logging import configure_logging
    from zencourt_pipeline.service.server import serve

    settings = Settings.from_env()
    configure_logging("service", settings)
    db = build_resources(settings)["app_db"].get()
    db.db.upgrade()  # start-up: the service brings the database it serves to the latest revision first
    canceller = service_canceller(settings, db)
    # completion webhooks go out from the outbox while the service runs
    from zencourt_pipeline.notify.deliverer import OutboxDeliverer

    stop = threading.Event()
    deliverer = OutboxDeliverer.from_settings(db, settings)
    deliverer.start(stop)
    try:
        serve(settings, db=db, canceller=canceller)
    finally:
        stop.set()
        deliverer.close()
    return 0


def _webhooks(args: argparse.Namespace) -> int:
    from zencourt_pipeline.db.database import AppDatabase
    from zencourt_pipeline.observability.logging import configure_logging

    settings = Settings.from_env()
    configure_logging("webhooks", settings)
    db = AppDatabase.connect(settings.resolved_database_url)
    try:
        if args.action == "requeue":
            return _requeue(db, args)
        if args.action == "dead":
            return _dead(db, args)
        from zencourt_pipeline.notify.deliverer import OutboxDeliverer

        deliverer = OutboxDeliverer.from_settings(db, settings)
        if args.once:
            print(json.dumps(deliverer.deliver_due(limit=args.limit)) if args.json else deliverer.deliver_due(limit=args.limit))
            return 0
        stop = threading.Event()
        try:
            deliverer.run_forever(stop)
        except KeyboardInterrupt:
            stop.set()
        return 0
    finally:
        db.db.dispose()


def _requeue(db, args: argparse.Namespace) -> int:
    """`zencourt webhooks requeue`: dead rows back to pending, due now, attempts reset."""

    if not args.ids and not args.all_dead and not args.event:
        print("zencourt webhooks requeue: name rows with --id, --event TYPE or --all-dead", file=sys.stderr)
        return 2
    count = db.outbox.requeue_dead(ids=args.ids or None, event=args.event)
    scope = "dead rows" + (f" of event {args.event}" if args.event else "") + (" among the given ids" if args.ids else "")
    print(json.dumps({"requeued": count}) if args.json else f"requeued {count} {scope}")
    logging.getLogger("zencourt_pipeline.notify").info(
        "requeued dead webhooks", extra={"requeued": count, "ids": args.ids or None, "event": args.event}
    )
    return 0


def _dead(db, args: argparse.Namespace) -> int:
    """`zencourt webhooks dead`: the dead rows, oldest first."""
    from zencourt_pipeline.db.records import as_dict

    rows = db.outbox.dead_rows(event=args.event, limit=args.limit)
    if args.json:  # the stored columns but the body (dead_rows does not read it)
        listed = [{**as_dict(row, omit=("body", "lease_until")), "error_code": row.error_code} for row in rows]
        print(json.dumps(listed, default=str, indent=2))
        return 0
    summary = db.outbox.dead_summary()
    print(f"{summary.dead} dead row(s)" + (f"; showing {len(rows)}" if len(rows) < summary.dead else ""))
    for row in rows:
        error = (row.last_error or "").replace("\n", " ")[:120]
        print(f"{row.id}  {row.event:<16} batch {row.batch_id}  {row.error_code}  attempts {row.attempts}  "
              f"created {row.created_at.isoformat()}  {error}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    """`zencourt keys create|list|revoke`: the per-workspace API keys of the HTTP service."""
    from zencourt_pipeline.db.database import AppDatabase
    from zencourt_pipeline.domain import ApiScope

    settings = Settings.from_env()
    db = AppDatabase.connect(settings.resolved_database_url)
    try:
        db.db.upgrade()  # the table is migration 0007's: a CLI run before the service's first start works too
        if args.action == "create":
            if not args.workspace:
                print("zencourt keys create: name the key's workspace with --workspace", file=sys.stderr)
                return 2
            scopes = [ApiScope(scope) for scope in args.scopes] or list(ApiScope)
            try:
                record, key = db.api_keys.create_key(args.workspace, scopes, name=args.name)
            except ValueError as exc:
                print(f"zencourt keys create: {exc}", file=sys.stderr)
                return 2
            print(f"created key {record.prefix} (id {record.id}) of workspace {record.workspace_id}, "
                  f"scopes {','.join(record.scopes)}")
            print("the key follows; it is shown this once only (the database keeps its SHA-256):")
            print(key)
            return 0
        if args.action == "list":
            keys = db.api_keys.list_keys(workspace_id=args.workspace)
            if args.json:
                print(json.dumps([_key_json(record) for record in keys], indent=2))
                return 0
            for record in keys:
                print(f"{record.prefix}  {record.workspace_id}  {','.join(record.scopes)}  "
                      f"created {_when(record.created_at)}  last used {_when(record.last_used_at)}  "
                      f"{'revoked ' + _when(record.revoked_at) if record.revoked else 'active'}"
                      + (f"  {record.name}" if record.name else ""))
            return 0
        if not args.key:
            print("zencourt keys revoke: name the key by its prefix or id", file=sys.stderr)
            return 2
        revoked = db.api_keys.revoke(args.key)
        if revoked is None:
            print(f"zencourt keys revoke: no key {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked key {revoked.prefix} of workspace {revoked.workspace_id} at {_when(revoked.revoked_at)}")
        return 0
    finally:
        db.db.dispose()


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "never"


def _key_json(record) -> dict:
    from zencourt_pipeline.db.records import as_dict

    listed = as_dict(record, omit=("key_sha256",))
    return {name: value.isoformat() if hasattr(value, "isoformat") else value for name, value in listed.items()}


def openapi_document() -> str:
    """The HTTP service's OpenAPI document as docs/openapi.json holds it (no environment read)."""
    import tempfile

    from zencourt_pipeline.service.app import create_app
    from zencourt_pipeline.service.openapi import openapi_json

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(data_dir=tmp, database_url="sqlite://"), verifier=object())
        document = openapi_json(app)
        app.state.db.db.dispose()
    return document


def _openapi(_args: argparse.Namespace) -> int:
    sys.stdout.write(openapi_document())
    return 0


def _worker(args: argparse.Namespace) -> int:
    from zencourt_pipeline.defs.executors import run_worker

    run_worker(Settings.from_env(), WorkQueue(args.queue), args.concurrency, args.name)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zencourt", description="Zencourt listing-video pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the sample listing through the pipeline on a local instance")
    demo.add_argument("--orientation", choices=names(Orientation), default=None)
    demo.add_argument("--timeout", type=float, default=600)
    demo.set_defaults(func=_demo)
    db = sub.add_parser("db", help="application database")
    db.add_argument("action", choices=["upgrade"])
    db.set_defaults(func=_db)
    serve = sub.add_parser("serve", help="the HTTP service (webhooks, status, cancel, storage)")
    serve.set_defaults(func=_serve)
    hooks = sub.add_parser(
        "webhooks",
        help="completion webhooks in the outbox: deliver (zencourt serve does it too), list dead rows, requeue them",
    )
    hooks.add_argument("action", choices=["deliver", "dead", "requeue"])
    hooks.add_argument("--once", action="store_true", help="deliver: what is due now, then exit")
    hooks.add_argument("--limit", type=int, default=50, help="deliver: rows per pass; dead: rows listed")
    hooks.add_argument("--id", dest="ids", action="append", default=[], help="requeue: this row (repeatable)")
    hooks.add_argument("--all-dead", action="store_true", help="requeue: every dead row")
    hooks.add_argument("--event", default=None, help="requeue/dead: only rows of this event (e.g. batch.completed)")
    hooks.add_argument("--json", action="store_true", help="print JSON")
    hooks.set_defaults(func=_webhooks)
    keys = sub.add_parser("keys", help="per-workspace API keys of the HTTP service: create, list, revoke")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("key", nargs="?", default=None, help="revoke: the key's prefix (zck_...) or id")
    keys.add_argument("--workspace", default=None, help="create: the key's workspace; list: only its keys")
    keys.add_argument("--scope", dest="scopes", action="append", default=[], choices=names(ApiScope),
                      help="create: a scope of the key (repeatable; default: all of them)")
    keys.add_argument("--name", default=None, help="create: a label shown by list")
    keys.add_argument("--json", action="store_true", help="list: print JSON")
    keys.set_defaults(func=_keys)
    worker = sub.add_parser("worker", help="a Celery worker of the runs' steps (ZENCOURT_EXECUTOR=celery)")
    worker.add_argument("--queue", required=True, choices=names(WorkQueue), help="media (normalize, compose) or providers")
    worker.add_argument("--concurrency", type=int, default=None, help="steps at once (default: cores for media, 8 for providers)")
    worker.add_argument("--name", default=None, help="the worker's name in the runs' events (default: <queue>-<random>)")
    worker.set_defaults(func=_worker)
    api = sub.add_parser("openapi", help="print the HTTP service's OpenAPI document (zencourt openapi > docs/openapi.json)")
    api.set_defaults(func=_openapi)
    from zencourt_pipeline.pipeline.spend import add_spend_parser

    add_spend_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
