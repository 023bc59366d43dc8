"""The models: the registry of named models, text encoders, language models, the local llama runtime.

An empty face: import each name from the module that defines it."""
