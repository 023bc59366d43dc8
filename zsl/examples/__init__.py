"""Small example datasets written for zsl (CC0): a news-topic taxonomy and texts.

Example:
    >>> from zsl.examples import example_path
    >>> example_path("news_topics.jsonl").name
    'news_topics.jsonl'
"""

from importlib import resources
from pathlib import Path

__all__ = ["example_path"]


def example_path(name: str) -> Path:
    """Path of a shipped example file (``news_topics.jsonl``, ``news_topics_labels.txt``)."""
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"No example file named {name!r} in {path.parent}")
    return path
