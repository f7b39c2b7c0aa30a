"""The Faust worker: agents around the copy engine, per-wallet state tables, book and reference views."""
