"""EfficientNet-Lite0 tags on real photos shipped by Debian's opencv-doc (nobody here made them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cluster.errors import InputError
from models.offline.tags import EfficientNetTagger, imagenet_labels

PHOTOS = Path("/usr/share/doc/opencv-doc/examples/data")


def test_labels_are_the_imagenet_classes() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby" and labels[999] == "toilet tissue"


@pytest.fixture(scope="module")
def tagger() -> EfficientNetTagger:
    t = EfficientNetTagger()
    if not t.availability().ok:
        pytest.skip(t.availability().reason)
    return t


def _photo(name: str) -> np.ndarray:
    path = PHOTOS / name
    if not path.exists():
        pytest.skip("apt-get install opencv-doc")
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("squirrel_cls.jpg", "fox squirrel"),
        ("orange.jpg", "orange"),
        ("baboon.jpg", "baboon"),
        ("messi5.jpg", "soccer ball"),
    ],
)
def test_top_label_on_real_photos(tagger: EfficientNetTagger, name: str, label: str) -> None:
    tags = tagger.tag(_photo(name))
    assert tags[0][0] == label, tags
    scores = [s for _, s in tags]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.mark.slow
def test_batch_features_and_bad_input(tagger: EfficientNetTagger) -> None:
    a, b = _photo("orange.jpg"), _photo("baboon.jpg")
    batch = tagger.tag_batch([a, b])
    assert [t[0][0] for t in batch] == ["orange", "baboon"]
    f = tagger.features([a, a[:, ::-1].copy(), b])
    assert f.shape == (3, 1280)
    assert f[0] @ f[1] > f[0] @ f[2]  # a mirrored photo is nearer to itself than to another photo
    with pytest.raises(InputError):
        tagger.tag(np.zeros((10, 10), np.uint8))
