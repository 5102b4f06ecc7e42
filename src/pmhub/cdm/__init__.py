"""OMOP CDM v5.4: the specification, the schema on each backend, and the vocabulary."""
