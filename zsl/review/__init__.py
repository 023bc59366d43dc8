"""Review: the export for reviewers, label-quality checks and the review server.

An empty face: import each name from the module that defines it."""
