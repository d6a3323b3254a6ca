"""Integrations with the libraries of the field; each module imports its library at the top."""
