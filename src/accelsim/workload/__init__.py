"""Workloads: op types, graphs, model configs and builders."""
