"""Revisions of policies in git, the diffs between two versions and their impact on claims:
history and version references (revisions), each claim decided under both versions (impact),
and the diff reports in Markdown, HTML and JSON with their templates (report, templates/).

Comparing two versions' text is medpol.compiler.diff's job; deciding a claim is medpol.engine's.
The published site (medpol.publish) renders these reports' templates beside its own pages.
"""
