"""Test helpers shared by the test modules (a scripted HTTP server on 127.0.0.1)."""
