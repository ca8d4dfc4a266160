"""Thin ctypes bindings to Linux kernel APIs, and pure decoders of what they return."""
