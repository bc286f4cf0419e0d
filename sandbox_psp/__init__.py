"""The sandbox PSP: an HTTP service that behaves like a real PSP, for development and tests."""
