"""The training process, in rooms that follow the pipeline; a room imports only rooms below it (and common, kernels):

    cli.py, commands/   the `grpo-studio` commands
    run/                one run folder and its engine process: runner, socket server, locks, progress
    distributed/        several ranks under torchrun
    train/              the GRPO loop and what one step needs
    evaluate/           held-out evaluation
    chat/               Try: base vs tuned answers
    rollout/ rewards/ export/          generation; reward functions; GGUF / Modelfile / merged export
    model/ hub/ data/ checkpoints/     the policy; downloads; datasets; checkpoints
    common/             torch-free, shared with the GUI (config, protocol, run store, estimator)

tests/test_rooms.py enforces the order; docs/architecture.md describes each room.
"""
import logging
import warnings

# Library-to-library noise that users can do nothing about, kept off their terminals and engine logs:
# bitsandbytes warns when it is imported (by peft, by us) on CPUs with AVX512-BF16 that an optional,
# download-only kernel is missing (its plain CPU path works); peft reads a transformers property that
# transformers has deprecated.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
