"""Windows file-system APIs: pure decoders tested everywhere, ctypes bindings used on Windows.

The modules that talk to Win32 load kernel32 only when called on Windows, so everything
here imports (and `pipeline check` validates configs that use it) on any OS.
"""
