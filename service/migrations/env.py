"""Alembic environment for the prediction log.

Run programmatically by ``service.store.migrate``, which passes an open connection (already
holding the migration lock) in ``config.attributes["connection"]``. To add a revision:
``alembic -x ... revision`` is not wired up; copy ``versions/0001_initial.py``, bump ``revision``
and ``down_revision``, and write the ``op.*`` calls by hand (the test suite checks the migrated
schema against ``service.store.metadata``).
"""

from alembic import context

from service.store import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through service.store.migrate(engine)")

context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
