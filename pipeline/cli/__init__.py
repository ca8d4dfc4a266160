"""The `pipeline` command."""
