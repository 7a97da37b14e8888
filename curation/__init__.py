"""Dataset curation: duplicates and outliers, label issues, reviewers' decisions, galleries.

Each module does one job and returns :class:`curation.findings.Finding` objects; the CLI
(``wmstudio curate``) stores them as flags through :mod:`curation.decisions`, which is where a
reviewer's earlier "dismiss" keeps a finding from being raised again.
"""
