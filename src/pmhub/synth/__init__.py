"""Synthetic hospital network: a seeded, vectorised simulation of a Korean regional
population (Gangwon) and its hospitals, written as OMOP CSV, Synthea CSV or FHIR R4.

Public API: :func:`pmhub.synth.service.generate` (files) and
:func:`pmhub.synth.load.load_sites` (straight into site CDWs).
"""
