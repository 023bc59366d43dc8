"""Students: few-shot heads and the distilled StudentClassifier.

An empty face: import each name from the module that defines it."""
