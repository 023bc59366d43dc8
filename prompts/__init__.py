"""Prompt templates and DSPy signatures as versioned data (JSON files in this folder).

Load them with :func:`zsl.prompting.load_prompt`; every result zsl writes records the
name and version of the prompts that produced it.
"""
