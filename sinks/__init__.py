"""Sinks: the executor (intents -> venue or paper book -> reports) and the PostgreSQL writer."""

from importlib import resources

# The PostgreSQL schema this package writes to; passed to `polycopy.infra.postgres.migrate`.
MIGRATIONS = resources.files(__name__) / "migrations"
