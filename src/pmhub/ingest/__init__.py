"""Ingest: Synthea CSV, FHIR R4 and OMOP CSV into a site's OMOP CDW, every row accounted for."""

from pmhub.ingest.service import FORMATS, FileAccount, IngestReport, ingest, ingest_job, ingest_site

__all__ = ["FORMATS", "FileAccount", "IngestReport", "ingest", "ingest_job", "ingest_site"]
