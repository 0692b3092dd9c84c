"""models.local_hf end to end with tiny random models built from configs (no weights downloaded).

Why tiny random models: no video-language model ships in a package, but transformers builds
Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision and Whisper from a config in milliseconds. Saved to a
directory with a BPE tokenizer trained here, they exercise the real path a user's checkpoint
takes: directory -> AutoTokenizer/AutoModel -> frames from a generated video -> our video
inputs -> model.generate -> text. The answers are noise; the plumbing is what is tested
(shapes, token counts, M-RoPE inputs, streaming, errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cluster.config import BackendConfig
from cluster.errors import InputError
from models.base import ChatMessage, TimedFrame

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from models.local_hf import (  # noqa: E402
    LocalHFSpeechToText,
    LocalHFTextGenerator,
    LocalHFVisionLanguage,
    llava_onevision_video_tokens,
    qwen_video_inputs,
    select_frames,
    smart_resize,
)

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
CORPUS = [
    "the video shows a red square moving left",
    "what happens at ten seconds",
    "frames at times",
    "a person walks into the room and sits down",
    "answer the question about the video",
] * 20


def make_tokenizer(specials: list[str], directory: Path, vocab_size: int = 300) -> Any:
    """A byte-level BPE trained on a few sentences, wrapped so AutoTokenizer loads it offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk,
        eos_token=specials[0],
        pad_token=specials[0],
        additional_special_tokens=specials[1:],
    )
    tok.save_pretrained(directory)
    return tok


def build_qwen(directory: Path, kind: str = "qwen2_vl") -> Path:
    tok = make_tokenizer(QWEN_SPECIALS, directory)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    text = {
        "vocab_size": len(tok),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 4096,
        "eos_token_id": ids["<|endoftext|>"],
        "bos_token_id": ids["<|endoftext|>"],
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
    }
    vision: dict[str, Any] = {
        "depth": 1,
        "embed_dim": 32,
        "hidden_size": 32,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    if kind == "qwen2_vl":
        cfg = transformers.Qwen2VLConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
        )
        model = transformers.Qwen2VLForConditionalGeneration(cfg)
    else:
        vision = {
            **vision,
            "intermediate_size": 64,
            "out_hidden_size": 32,
            "fullatt_block_indexes": [0],
            "window_size": 56,
            "tokens_per_second": 2,
        }
        vision.pop("embed_dim")
        cfg = transformers.Qwen2_5_VLConfig(
            text_config=text,
            vision_config=vision,
            image_token_id=ids["<|image_pad|>"],
            video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"],
            vision_end_token_id=ids["<|vision_end|>"],
        )
        model = transformers.Qwen2_5_VLForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = ids["<|endoftext|>"]
    model.save_pretrained(directory)
    return directory


def build_llava_onevision(directory: Path) -> Path:
    specials = ["<|endoftext|>", "<image>", "<video>"]
    tok = make_tokenizer(specials, directory)
    cfg = transformers.LlavaOnevisionConfig(
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
        },
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 56,
            "patch_size": 14,
        },
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        video_token_id=tok.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1,
    )
    model = transformers.LlavaOnevisionForConditionalGeneration(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def video_frames(tmp_path_factory: pytest.TempPathFactory) -> list[TimedFrame]:
    """Five frames sampled from a generated H.264 video by the real sampling code."""
    from data_pipeline.sampling import SamplingSpec, sample_frames
    from vidray import samples

    path = samples.make_video(tmp_path_factory.mktemp("vid") / "clip.mp4", duration=3)
    frames = [TimedFrame(f.t, f.image) for f in sample_frames(path, SamplingSpec(strategy="uniform", num=5))]
    assert len(frames) == 5
    return frames


def _backend(cls: Any, directory: Path, **options: Any) -> Any:
    return cls(BackendConfig(type=cls.type_name, model=str(directory), options=options), name="test")


# ---- pure helpers -------------------------------------------------------------------------------


def test_smart_resize_and_frame_selection() -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    for h, w, lo, hi in [
        (720, 1280, 28 * 28, 360 * 640),
        (100, 100, 56 * 56, 10**6),
        (20, 3000, 3136, 10**5),
    ]:
        assert smart_resize(h, w, 28, lo, hi) == reference(h, w, 28, lo, hi)
    h, w = smart_resize(100, 100, 28, 56 * 56, 10**6)
    assert h % 28 == 0 and w % 28 == 0
    frames = [TimedFrame(float(t), np.zeros((8, 8, 3), np.uint8)) for t in range(20, 0, -1)]
    chosen = select_frames(frames, 4)
    assert [f.t for f in chosen] == [1.0, 7.0, 14.0, 20.0]


def test_qwen_patch_layout_matches_processor_shape() -> None:
    cfg = transformers.Qwen2VLConfig(
        vision_config={"patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    ).vision_config
    frames = [TimedFrame(t, np.full((56, 84, 3), 10 * t, np.uint8)) for t in range(3)]
    inputs = qwen_video_inputs(frames, cfg, max_pixels=10**6)
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 6]]  # 3 frames padded to 4 -> 2 temporal patches
    assert inputs["pixel_values_videos"].shape == (2 * 4 * 6, 3 * 2 * 14 * 14)
    assert (
        llava_onevision_video_tokens(4, transformers.SiglipVisionConfig(image_size=384, patch_size=14))
        == 4 * 196 + 1
    )


def test_availability_explains_what_is_missing(tmp_path: Path) -> None:
    assert not LocalHFVisionLanguage().availability().ok
    assert "no model directory" in LocalHFVisionLanguage().availability().reason
    assert "config.json" in _backend(LocalHFVisionLanguage, tmp_path).availability().reason
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    reason = _backend(LocalHFVisionLanguage, tmp_path).availability().reason
    assert "bert" in reason and "qwen2_vl" in reason
    with pytest.raises(InputError):
        _backend(LocalHFVisionLanguage, tmp_path).generate([ChatMessage("user", "hi")])


# ---- end to end through generate ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_video_language_end_to_end(tmp_path: Path, video_frames: list[TimedFrame], kind: str) -> None:
    torch.manual_seed(0)
    vlm = _backend(LocalHFVisionLanguage, build_qwen(tmp_path, kind), max_pixels=112 * 112)
    assert vlm.availability().ok, vlm.availability().reason
    messages = [ChatMessage("system", "You describe videos."), ChatMessage("user", "What happens at 1.5s?")]
    inputs = vlm.prepare(messages, video_frames)
    cfg = vlm._get()["model"].config
    grid = inputs["video_grid_thw"][0].tolist()
    assert grid[0] == 3  # 5 frames -> padded to 6 -> 3 temporal patches
    n_video = int((inputs["input_ids"] == cfg.video_token_id).sum())
    assert n_video == grid[0] * grid[1] * grid[2] // 4
    assert int((inputs["mm_token_type_ids"] == 2).sum()) == n_video
    assert ("second_per_grid_ts" in inputs) == (kind == "qwen2_5_vl")
    prompt = vlm._get()["tok"].decode(inputs["input_ids"][0])
    assert ", ".join(f"{f.t:.1f}s" for f in video_frames) in prompt and "What happens at 1.5s?" in prompt

    out = vlm.generate(messages, video_frames, max_tokens=6)
    assert (
        out.text
        and 0 < out.usage.output_tokens <= 6
        and out.usage.input_tokens == inputs["input_ids"].shape[1]
    )
    deltas = list(vlm.stream(messages, video_frames, max_tokens=6))
    assert "".join(deltas).strip() == out.text  # greedy: same tokens either way
    assert vlm.generate([ChatMessage("user", "no frames")], max_tokens=3).text


@pytest.mark.slow
def test_llava_onevision_end_to_end(tmp_path: Path, video_frames: list[TimedFrame]) -> None:
    torch.manual_seed(0)
    vlm = _backend(LocalHFVisionLanguage, build_llava_onevision(tmp_path), max_frames=4)
    inputs = vlm.prepare([ChatMessage("user", "Describe the clip.")], video_frames)
    assert inputs["pixel_values_videos"].shape == (1, 4, 3, 56, 56)
    assert int((inputs["input_ids"] == vlm._get()["model"].config.video_token_id).sum()) == 4 * 4 + 1
    out = vlm.generate([ChatMessage("user", "Describe the clip.")], video_frames, max_tokens=5)
    assert out.text and out.usage.output_tokens <= 5


@pytest.mark.slow
def test_text_generator_from_directory(tmp_path: Path) -> None:
    tok = make_tokenizer(["<|endoftext|>"], tmp_path)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        eos_token_id=tok.eos_token_id,
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(tmp_path)
    gen = _backend(LocalHFTextGenerator, tmp_path)
    out = gen.generate([ChatMessage("user", "the video shows")], max_tokens=4)
    assert out.text and out.usage.output_tokens <= 4
    assert "".join(gen.stream([ChatMessage("user", "the video shows")], max_tokens=4)).strip() == out.text


@pytest.mark.slow
def test_whisper_from_directory_on_video_audio(tmp_path: Path, media: Any) -> None:
    from data_pipeline.audio import load_audio

    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    tok = make_tokenizer(specials, tmp_path)
    ids = [tok.convert_tokens_to_ids(t) for t in specials]
    cfg = transformers.WhisperConfig(
        vocab_size=len(tok),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=64,
        eos_token_id=ids[0],
        pad_token_id=ids[0],
        bos_token_id=ids[0],
        decoder_start_token_id=ids[1],
    )
    model = transformers.WhisperForConditionalGeneration(cfg)
    model.generation_config.forced_decoder_ids = None
    model.generation_config.decoder_start_token_id = ids[1]
    model.save_pretrained(tmp_path)
    transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path)
    stt = _backend(LocalHFSpeechToText, tmp_path, max_new_tokens=5)
    assert stt.availability().ok, stt.availability().reason
    audio = load_audio(media.speech)
    torch.manual_seed(0)
    transcript = stt.transcribe(audio)
    # Random weights may emit only special tokens; the contract is the window layout.
    for seg in transcript.segments:
        assert 0 <= seg.start < seg.end <= len(audio) / 16000 + 1e-6
