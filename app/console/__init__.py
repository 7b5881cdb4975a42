"""The operator console: `submit` and `jobs list|show`, over the REST API (see docs/console.md)."""
