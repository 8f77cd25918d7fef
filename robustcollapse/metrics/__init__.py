"""Pure metric functions: tensors in, numbers out; no I/O, no models."""
