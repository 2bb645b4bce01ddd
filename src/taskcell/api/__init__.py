"""The HTTP API (FastAPI): docs/api.md's contract, served by ``taskcell serve``."""
