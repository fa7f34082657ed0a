"""ASGI entry point: `uvicorn breitband.main:app`."""

from breitband.app import create_app

app = create_app()
