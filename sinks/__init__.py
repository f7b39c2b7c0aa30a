"""Sinks: the executor (intents -> venue or paper book -> reports) and the PostgreSQL writer."""
