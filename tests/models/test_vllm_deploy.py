"""The ray.serve.llm builder outside the vLLM venv: importable, and a clear error naming the extra."""

from __future__ import annotations

import pytest

from cluster.errors import UnavailableError
from cluster.optional import available


@pytest.mark.slow  # importing ray.serve takes ~10-30 s here
@pytest.mark.skipif(available("vllm"), reason="vLLM is installed here; the CPU test covers the builder")
def test_builder_names_the_gpu_extra_without_vllm() -> None:
    from models import vllm_deploy

    with pytest.raises(UnavailableError, match=r"vidray\[gpu\]"):
        vllm_deploy.llm_config("m", "/models/m", cpu=True)
