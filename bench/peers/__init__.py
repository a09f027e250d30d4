"""Minimal, honest broadcast servers chatapp is compared with."""
