"""The training process: config, data, rewards, model, loop, checkpoints, export, estimator, run store, CLI."""
import logging
import warnings

# Library-to-library noise that users can do nothing about, kept off their terminals and engine logs:
# bitsandbytes warns when it is imported (by peft, by us) on CPUs with AVX512-BF16 that an optional,
# download-only kernel is missing (its plain CPU path works); peft reads a transformers property that
# transformers has deprecated.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated", category=FutureWarning)
