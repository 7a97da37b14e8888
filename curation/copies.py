"""What the duplicate backends cannot see: byte-identical files, and copies labelled differently.

Ingest stores a photo once under its content hash, so two byte-identical files are one item with
two ``origins`` and never reach a backend as a pair. This module turns such items into
``exact_duplicate`` findings, lists every user path of each duplicate group in the findings'
``details["files"]`` (the JSON's ``files``), and raises a ``label_conflict`` for each group of
copies (byte-identical, pixel-identical or near) whose files carry different labels, with each
path and its label, so no disagreement is settled silently. Backend-independent: it runs on the
clusters of either backend.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from curation.duplicates import DuplicateResult, ImageRef
from curation.findings import Finding

NONE = "none"


def _paths(ref: ImageRef) -> list[str]:
    return [path or str(ref.path) for path, _ in ref.labelled]


def _exact_sets(result: DuplicateResult) -> dict[str, set[str]]:
    """key -> the keys it is pixel-identical to (itself included), from the backends' ``twin`` links."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    for finding in result.findings:
        if finding.kind == "exact_duplicate" and finding.details.get("twin"):
            parent[root(finding.key)] = root(finding.details["twin"])
    members: dict[str, set[str]] = defaultdict(set)
    for key in list(parent):
        members[root(key)].add(key)
    return {key: members[root(key)] for key in parent}


def copy_findings(refs: list[ImageRef], result: DuplicateResult) -> list[Finding]:
    """Complete ``result.findings`` in place (files of each group) and return the new findings."""
    by_key = {ref.key: ref for ref in refs}
    cluster_of = {key: cluster for cluster in result.clusters for key in cluster.members}
    clusters = {cluster.id: cluster for cluster in result.clusters}
    exact = _exact_sets(result)
    added: list[Finding] = []
    for finding in result.findings:
        if finding.kind == "near_duplicate" and finding.group in clusters:
            members = clusters[finding.group].members
            finding.details["files"] = [p for key in members if key in by_key for p in _paths(by_key[key])]
        elif finding.kind == "exact_duplicate":
            same = sorted(exact.get(finding.key, {finding.key}), key=lambda k: k != finding.details.get("keeper"))
            finding.details["files"] = [p for key in same if key in by_key for p in _paths(by_key[key])]
    flagged_exact = {f.key for f in result.findings if f.kind == "exact_duplicate"}
    for ref in refs:
        paths = _paths(ref)
        if len(paths) < 2 or ref.key in flagged_exact:
            continue
        group = cluster_of[ref.key].id if ref.key in cluster_of else f"dup-{ref.key[:12]}"
        names = ", ".join(Path(p).name for p in paths)
        added.append(
            Finding(
                ref.key,
                "exact_duplicate",
                1.0,
                f"{len(paths)} byte-identical files: {names}",
                group,
                "sha256",
                {"files": paths, "keeper": ref.key, "keeper_file": ref.name, "byte_identical": True},
            )
        )
    return added + label_conflicts(refs, result)


def label_conflicts(refs: list[ImageRef], result: DuplicateResult) -> list[Finding]:
    """One ``label_conflict`` per group of copies whose files disagree, on the group's keeper."""
    by_key = {ref.key: ref for ref in refs}
    groups = [(cluster.id, cluster.members) for cluster in result.clusters]
    grouped = {key for _, members in groups for key in members}
    groups += [(f"dup-{ref.key[:12]}", [ref.key]) for ref in refs if ref.key not in grouped and len(ref.labelled) > 1]
    findings = []
    for group, members in groups:
        files = [
            {"file": path or str(by_key[key].path), "label": label or NONE, "key": key}
            for key in members
            if key in by_key
            for path, label in by_key[key].labelled
        ]
        labels = sorted({f["label"] for f in files})
        if len(labels) < 2:
            continue
        shown = ", ".join(f"{Path(f['file']).name}={f['label']}" for f in files)
        reason = (
            f"copies labelled differently ({' vs '.join(labels)}): {shown}; all labels are kept until a reviewer "
            "decides (`wmstudio curate decide ID accept --label LABEL`)"
        )
        details = {
            "labels": [{"file": f["file"], "label": f["label"]} for f in files],
            "files": [f["file"] for f in files],
            "keys": list(dict.fromkeys(f["key"] for f in files)),
        }
        findings.append(Finding(members[0], "label_conflict", 1.0, reason, group, "copies", details))
    return findings
