"""A narrated four-topic lecture (slides with titles and body lines), analysed once per session."""

from __future__ import annotations

import pytest

from analysis.runner import AnalysisContext
from analysis.schema import AnalysisRequest
from cluster.config import load_settings

TOPICS = [
    ("Mountain Railways",
     "The mountain railway was built in 1898. The train climbs two thousand meters in forty minutes. "
     "The bridge at the top is made of granite.",
     ["Opened: 1898", "Length: 9 km"]),
    ("Coffee Roasting",
     "Green coffee beans are roasted at two hundred degrees. A light roast keeps more acidity. "
     "The old bridge between flavor and bitterness is the roast time.",
     ["Temperature: 200 C", "Time: 12 minutes"]),
    ("Solar Panels",
     "Solar panels turn sunlight into electricity. A typical panel produces four hundred watts. "
     "Panels face south in the northern hemisphere.",
     ["Efficiency: 22 percent", "Output: 400 W"]),
    ("Ocean Whales",
     "Blue whales are the largest animals on earth. They eat tiny krill. "
     "A whale song can travel a thousand kilometers. Whales were seen near the harbour bridge.",
     ["Length: 30 m", "Food: krill"]),
]


@pytest.fixture(scope="session")
def lecture(tmp_path_factory):
    """(TopicVideo, AnalysisContext) for the lecture; analysis pieces are memoised on the context."""
    from data_pipeline.ingest import ingest
    from vidray.samples import make_topic_video

    d = tmp_path_factory.mktemp("lecture")
    video = make_topic_video(d / "lecture.mp4", [(t, n) for t, n, _ in TOPICS], size=(1280, 720),
                             body=[b for _, _, b in TOPICS])
    settings = load_settings(env={"VIDRAY_DATA_DIR": str(d / "data")})
    ctx = AnalysisContext(video=ingest(video.path, settings), request=AnalysisRequest(), settings=settings)
    return video, ctx
