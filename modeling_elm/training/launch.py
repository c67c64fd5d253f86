"""What a training run really is (processes, sharding, device, dtype), and whether that is what its launch asked for.

Accelerate quietly runs something else in two cases a CPU user meets: `accelerate launch --cpu --num_processes N`
starts one process (its CPU launcher spreads processes only through mpirun), and an FSDP or DeepSpeed config on CPU
processes trains plain DDP over gloo (accelerate shards only on accelerators). Either would train for minutes and
report results of a run nobody asked for, so `train.py` refuses them before any work, with the command that does
what was meant.
"""

import logging
import os

logger = logging.getLogger(__name__)

CPU_PROCESSES_FIX = (
    "To train with N CPU processes, launch them with torchrun:\n"
    "    torchrun --nproc_per_node N train.py --config recipes/quick.yaml --use_cpu true\n"
    "or with accelerate's multi-process launcher (on a machine without a GPU its processes run on the CPU):\n"
    "    accelerate launch --config_file configs/accelerate/cpu_ddp.yaml --num_processes N train.py --config ...")


def _flag(environ, name: str) -> bool:
    return environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def asked_sharding(sft_config, environ=os.environ) -> str | None:
    """The sharding the launch asked for (an accelerate config, or SFTConfig's own --fsdp / --deepspeed), if any."""
    if _flag(environ, "ACCELERATE_USE_DEEPSPEED") or sft_config.deepspeed:
        return "DeepSpeed"
    if _flag(environ, "ACCELERATE_USE_FSDP") or sft_config.fsdp:
        return "FSDP"
    return None


def _state(sft_config):
    """accelerate's PartialState of this run (TrainingArguments builds it on first use of `device`)."""
    sft_config.device  # noqa: B018 - sets distributed_state
    return sft_config.distributed_state


def describe_run(sft_config, environ=os.environ) -> str:
    """One line saying what this run trains on: world size, data parallelism, device and dtype."""
    state = _state(sft_config)
    processes = state.num_processes
    device = state.device.type
    sharding = asked_sharding(sft_config, environ) if device != "cpu" else None
    if sharding == "DeepSpeed":
        mode = f"DeepSpeed ZeRO-{environ.get('ACCELERATE_DEEPSPEED_ZERO_STAGE', '?')}"
    elif sharding == "FSDP":
        mode = f"FSDP{environ.get('FSDP_VERSION', '1')}"
    elif processes > 1:
        mode = f"DDP over {state.backend}"
    else:
        mode = "single process"
    dtype = "bf16 autocast" if sft_config.bf16 else "fp16 autocast" if sft_config.fp16 else "float32"
    return f"{processes} process{'es' if processes > 1 else ''} ({mode}) on {device}, {dtype}"


def check_launch(sft_config, stage2: str = "full", environ=os.environ) -> None:
    """Refuse a run that is not what its launch asked for (see the module docstring); say what runs otherwise."""
    state = _state(sft_config)
    sharding = asked_sharding(sft_config, environ)
    if sharding and stage2 == "lora":
        raise SystemExit(
            f"--stage2 lora under {sharding}: the LoRA weights would be gathered as a PEFT model and cannot be merged "
            "into the whole ELM this run must save. Shard with --stage2 full (what sharding is for: the whole model "
            "trains), or train LoRA with plain DDP (configs/accelerate/ddp.yaml).")
    if sharding and state.device.type == "cpu":
        raise SystemExit(
            f"The launch asked for {sharding}, but this run is on the CPU, where accelerate does not shard: it would "
            f"train plain DDP over gloo with every process holding the whole model, without saying so.\n"
            f"{sharding} needs GPUs (configs/accelerate/{'zero3' if sharding == 'DeepSpeed' else 'fsdp2'}.yaml on a "
            f"GPU machine). {CPU_PROCESSES_FIX}")
    # accelerate's CPU launcher sets MASTER_ADDR only when asked for more than one process, and starts just one.
    launched_by_accelerate_cpu = "ACCELERATE_USE_CPU" in environ and "WORLD_SIZE" not in environ
    if launched_by_accelerate_cpu and "MASTER_ADDR" in environ and state.num_processes == 1:
        raise SystemExit(
            "`accelerate launch --cpu` was asked for several processes but started one (accelerate spreads CPU "
            "processes only through mpirun), so this run would train alone.\n"
            f"{CPU_PROCESSES_FIX}\nFor one CPU process, drop --num_processes (or pass --num_processes 1).")
    if state.is_main_process:
        logger.info("Training on %s", describe_run(sft_config, environ))
