"""Producers: everything that brings venue trades onto the raw-trades topic."""
