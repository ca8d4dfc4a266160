"""fspipeline plugin: the `qt` source, on Qt's QFileSystemWatcher (PySide6)."""
