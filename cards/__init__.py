"""Jinja2 templates of devd's card preview page (installed as ``devd.templates``)."""
