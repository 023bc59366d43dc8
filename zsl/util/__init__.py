"""Small helpers every wing may use: private paths, progress, offline defaults, caches, retries.

An empty face: import each name from the module that defines it."""
