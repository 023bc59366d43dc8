"""Text labelling: the Tagger (Infer-Retrieve-Rank) and encoder fine-tuning.

An empty face: import each name from the module that defines it."""
