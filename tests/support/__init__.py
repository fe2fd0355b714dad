"""Helpers for integration tests: a hookline worker as a real subprocess, a recording receiver."""
