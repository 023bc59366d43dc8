"""Image labelling: the ImageTagger, its image-text backends and the global/local crop scores.

An empty face: import each name from the module that defines it."""
