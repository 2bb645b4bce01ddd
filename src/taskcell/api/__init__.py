"""The HTTP API (FastAPI): API.md's contract, served by ``taskcell serve``."""
