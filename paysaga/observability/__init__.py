"""Logs, metrics and traces of every paysaga process."""
