"""Freehold operator side: the CLI, specs, provisioning, the lab, capacity and migration."""
