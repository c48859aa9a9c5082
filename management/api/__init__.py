"""The management REST API under /api/gateway/: config entries, users, import/export, explain."""
