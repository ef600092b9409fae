"""WSGI entry point for gunicorn: ``gunicorn -c gunicorn.conf.py app:app``."""

from service import create_app

app = create_app()
