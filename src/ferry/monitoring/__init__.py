"""Metrics, prediction logs, drift and telemetry."""
