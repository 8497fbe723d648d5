"""Monitoring control plane for Azure ML endpoints."""
