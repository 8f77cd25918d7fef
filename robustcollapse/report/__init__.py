"""The result document (schema, atomic write, load) and its terminal tables."""
