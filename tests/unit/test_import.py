import subprocess
import sys

HEAVY = ("torch", "transformers", "faiss", "open_clip", "llama_cpp", "litellm", "dspy", "sentence_transformers", "ray",
         "cleanlab")


def test_import_zsl_is_light():
    code = (
        "import sys, zsl\n"
        "v = zsl.LabelVocab(['a', 'b'])\n"
        "zsl.ImageTagger, zsl.StudentClassifier, zsl.label_run, zsl.LabelSettings, zsl.Scorer\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import zsl pulled in heavy modules: {out.stdout.strip()}"


def test_lazy_attributes_resolve():
    import zsl

    assert zsl.metrics.rp_at_k is not None
    assert callable(zsl.get_lm)
    from zsl.image.tagger import ImageTagger
    from zsl.runs.label import label_run
    from zsl.student.classifier import StudentClassifier

    assert zsl.ImageTagger is ImageTagger and zsl.StudentClassifier is StudentClassifier and zsl.label_run is label_run
    try:
        zsl.does_not_exist  # noqa: B018
    except AttributeError as exc:
        assert "does_not_exist" in str(exc)
    else:
        raise AssertionError("unknown attribute must raise AttributeError")


# Every name a user imports from ``zsl``: removing one breaks their code, so the list is spelled out.
PUBLIC_API = [
    "ImageTagger", "InputError", "LabelSettings", "LabelVocab", "MissingDependencyError", "ModelIntegrityError",
    "ModelNotFoundError", "RemoteModelError", "Scorer", "StudentClassifier", "Tagger", "VocabIndex",
    "VocabularyError", "ZslError", "__version__", "budget_run", "get_encoder", "get_lm", "label_run", "list_models",
    "metrics",
]


def test_the_public_api_is_the_listed_names_and_each_resolves():
    import zsl

    assert sorted(zsl.__all__) == sorted(PUBLIC_API)
    for name in PUBLIC_API:
        assert getattr(zsl, name) is not None, name


def test_the_version_lives_in_zsl_version_and_matches_pyproject():
    import tomllib
    from pathlib import Path

    import zsl
    from zsl.version import __version__

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert zsl.__version__ == __version__ == pyproject["project"]["version"]
