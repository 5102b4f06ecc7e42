"""Pseudonymization and anonymization to the Korean guidelines (PIPC, health-data).

- ``policy``: the versioned YAML policy of a dataset (a rule per column, the models);
- ``keys``: the pseudonymization service's per-project HMAC keys (PMHUB_HOME, mode 600);
- ``hierarchy``, ``qitable``, ``models``, ``metrics``: generalization hierarchies, the compact
  distinct-row table, k-anonymity / l-diversity / t-closeness / k-map, ARX's loss and others;
- ``search`` (optimal full-domain lattice search) and ``mondrian`` (local recoding);
- ``risk``: prosecutor, journalist and marketer risk, population uniqueness;
- ``engine``, ``service``, ``sources``, ``report``: streaming releases over DuckDB with an
  adequacy report (적정성 검토 자료), all or nothing;
- ``text``: de-identification of Korean clinical notes, its evaluation and a note maker.
"""
