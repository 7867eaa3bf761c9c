"""Grafana dashboards shipped with Ferry (package data; see monitoring/alerts.py)."""
