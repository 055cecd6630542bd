"""The allowed values of the config's choice fields, written once: config.py declares its fields with them, and
the engine (rollout, advantages) and the CLI's flags (`grpo-studio estimate --optimizer ...`) check against
the same tuples. No imports, so a command's argument parser can use them without loading the config (yaml)."""

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")
SCALE_REWARDS = ("group", "batch", "none")
SCHEDULERS = ("constant", "linear", "cosine")
OPTIMIZERS = ("adamw", "adamw_8bit")
OFFLOAD = ("auto", "on", "off")
DEVICES = ("auto", "cuda", "cpu")
DTYPES = ("auto", "bfloat16", "float16", "float32")
OVERLONG = ("truncate", "drop")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")
MULTI_OBJECTIVE_AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")
GENERATION_BACKENDS = ("auto", "hf", "fast")
FIT_MODES = ("auto", "off")
FIT_MAY_REDUCE = ("nothing", "max_completion_length")
