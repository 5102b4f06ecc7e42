"""Free-text de-identification of Korean clinical notes."""
