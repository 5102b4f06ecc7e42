"""Federated analytics and learning across sites (see README.md beside this file)."""
