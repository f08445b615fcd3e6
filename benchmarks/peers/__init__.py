"""Scripts that run the same job through peer libraries (in .venv-peers, not the dev venv)."""
