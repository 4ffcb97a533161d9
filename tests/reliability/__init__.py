"""Reliability tests: restarts, failures and recovery of real gateway processes."""
