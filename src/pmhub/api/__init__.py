"""The HTTP front door: thin routes, one module per group, over the layers' services."""
