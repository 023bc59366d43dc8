"""Silver data: predictions turned into training data, and reviewed decisions over them.

An empty face: import each name from the module that defines it."""
