"""Runbook actions for on-call: status gathering and classification, restore drills."""
