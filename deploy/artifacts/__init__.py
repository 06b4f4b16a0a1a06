"""Artifacts built on the operator's machine and pushed to servers: the app's release, SeaweedFS."""
