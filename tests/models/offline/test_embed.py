"""MiniLM sentence embeddings: shape/normalisation contract and retrieval of paraphrased questions."""

from __future__ import annotations

import numpy as np
import pytest

from cluster.errors import InputError
from models.offline.embed import DIM, MiniLMEmbedder

# Segments of a made-up cooking-and-repairs vlog transcript; each query paraphrases one segment
# and shares few or no content words with it.
SEGMENTS = [
    "First we preheat the oven to two hundred degrees and line the tray with baking paper.",
    "The bike chain keeps slipping, so I loosen the rear wheel nuts and pull the wheel back.",
    "Our flight to Lisbon was delayed by three hours because of a storm over the Atlantic.",
    "To keep the puppy calm at night we put a ticking clock inside a blanket in her basket.",
    "I repotted the fern into a bigger pot with fresh compost and some gravel for drainage.",
    "The quarterly revenue grew twelve percent, mostly from subscriptions in Asia.",
    "Remember to back up your laptop before upgrading the operating system.",
    "We measured the wall twice and marked the studs before hanging the heavy mirror.",
    "She practised the piano piece slowly with a metronome until the tempo felt natural.",
    "The soup needs more salt and a squeeze of lemon right before serving.",
    "My knee hurt after the marathon, so the physio suggested ice and a week of rest.",
    "Thanks for watching; subscribe and hit the bell so you never miss an episode.",
]
QUERIES = [
    ("how hot should the stove be before baking?", 0),
    ("fixing a bicycle whose drive chain skips", 1),
    ("why did the plane to Portugal leave late?", 2),
    ("helping a young dog sleep through the night", 3),
    ("moving a houseplant to a larger container", 4),
    ("how much did sales go up this quarter?", 5),
    ("save a copy of my files before an OS update", 6),
    ("finding the beams before putting up a heavy looking glass", 7),
    ("learning a keyboard song at a steady beat", 8),
    ("seasoning the broth at the end", 9),
    ("what to do about a sore joint after a long run", 10),
    ("the part where they ask viewers to follow the channel", 11),
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    e = MiniLMEmbedder()
    if not e.availability().ok:
        pytest.skip(e.availability().reason)
    return e


def test_availability_names_the_package(tmp_path: object) -> None:
    from cluster.config import BackendConfig

    bad = MiniLMEmbedder(BackendConfig(type="minilm", model="/nonexistent/model"))
    assert not bad.availability().ok
    assert "MiniLM" in bad.availability().reason


@pytest.mark.slow
def test_contract_shape_and_norm(embedder: MiniLMEmbedder) -> None:
    v = embedder.embed(["hello world", "a second, longer sentence about videos"])
    assert v.shape == (2, DIM) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, DIM)
    with pytest.raises(InputError):
        embedder.embed("not a list")  # type: ignore[arg-type]


@pytest.mark.slow
def test_paraphrased_queries_rank_their_segment_first(embedder: MiniLMEmbedder) -> None:
    seg = embedder.embed(SEGMENTS)
    q = embedder.embed([text for text, _ in QUERIES])
    ranks = np.argsort(-(q @ seg.T), axis=1)
    wrong = [(text, SEGMENTS[ranks[i, 0]]) for i, (text, want) in enumerate(QUERIES) if ranks[i, 0] != want]
    assert not wrong, wrong


@pytest.mark.slow
def test_the_direct_transformers_path_matches_sentence_transformers(embedder: MiniLMEmbedder) -> None:
    """Same vectors as SentenceTransformer.encode on the packaged directory, padding and truncation included."""
    st = pytest.importorskip("sentence_transformers")
    from models.offline.embed import _TransformersEncoder, plain_layout

    d = embedder.model_dir()
    assert d is not None and plain_layout(d) is not None
    assert isinstance(embedder._get_model(), _TransformersEncoder)  # the packaged model skips the ST import
    texts = [*SEGMENTS, "short", "word " * 400]  # mixed lengths pad in one batch; the last is truncated at 256
    ours = embedder.embed(texts)
    ref = st.SentenceTransformer(str(d), device="cpu", local_files_only=True).encode(
        texts, batch_size=5, normalize_embeddings=True, convert_to_numpy=True
    )
    assert ours.shape == ref.shape == (len(texts), DIM)
    assert float(np.abs(ours - ref).max()) < 1e-4


def test_an_unusual_sentence_transformers_layout_falls_back_to_the_package(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from models.offline.embed import plain_layout

    d = Path(str(tmp_path))
    (d / "1_Pooling").mkdir()
    (d / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    (d / "modules.json").write_text(json.dumps(modules))
    assert plain_layout(d) is not None and plain_layout(d).pooling == "mean"  # type: ignore[union-attr]
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (d / "modules.json").write_text(json.dumps(modules))
    assert plain_layout(d) is None  # a Dense head: only sentence-transformers runs it faithfully
    (d / "modules.json").write_text("not json")
    assert plain_layout(d) is None
