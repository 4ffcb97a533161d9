"""Credentials: password hashing, token signing and verification, principals."""
