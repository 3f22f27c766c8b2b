"""Placeholder replaced below."""
def check(model, document, doc_path):
    return list(model.diagnostics)
