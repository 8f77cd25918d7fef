"""Tests that need a CUDA device (marked `gpu`); skipped, with the reason, on machines without one."""
