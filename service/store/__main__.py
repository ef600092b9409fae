"""``python -m service.store migrate``: bring the prediction log's schema to the newest revision now.

Every worker migrates at start-up anyway; this is for a log big enough that a migration could outlast
gunicorn's worker timeout (a worker that takes longer to start is killed and started again, and a
PostgreSQL or SQLite migration then rolls back each time): run it once before starting the new
version. The database is the service's (``DATABASE_URL``, else the SQLite file beside ``OUTPUT_DIR``);
exit status 0 with one line naming the revision, 1 with one line saying why not.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.store", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("migrate",))
    parser.add_argument("--url", default=None, help="SQLAlchemy URL (default: DATABASE_URL, else the SQLite file)")
    args = parser.parse_args(argv)
    import sqlalchemy as sa

    from MLPipeline.actuals import public_url
    from service.store.connection import create_engine, database_url
    from service.store.rows import _reason
    from service.store.schema import migrate

    url = database_url(args.url)
    engine = create_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        print(f"migrate: {public_url(url)}: {_reason(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"migrate: {public_url(url)} is at revision {revision}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
