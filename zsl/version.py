"""The zsl version, in a leaf module anyone may import.

Run manifests, silver-data provenance and saved students record it; they import it from here
rather than from the package face (``import zsl``), which sits above them.
"""

__version__ = "0.1.0"
