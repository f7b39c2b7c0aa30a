"""Cross-cutting runtime: CLI, settings, connection factories, metrics server, simulator, demo."""
