"""Pure decision logic: no Kafka, HTTP, database or event loop; schema models in, values out."""
