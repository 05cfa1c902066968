"""Data: sources, validation, splitting and export of exam questions with their points."""
