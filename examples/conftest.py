"""Keeps the core test run out of the plugin template's own tests.

The template's tests import its package, which exists only once the template is installed;
`tests/e2e/test_plugin_template.py` installs it and runs them in a subprocess.
"""

from __future__ import annotations

collect_ignore = ["plugin-template"]
