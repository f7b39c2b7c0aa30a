"""Infrastructure, the bottom layer: Kafka, PostgreSQL, settings, metrics, the WebSocket session, the clock.

Each module owns one external library; nothing here knows about Polymarket or the copy policy.
"""
