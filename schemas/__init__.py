"""Wire schemas: one frozen pydantic model per topic value, and the topic registry."""
