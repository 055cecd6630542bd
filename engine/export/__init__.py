"""The trained adapter out of the engine: GGUF LoRA for llama.cpp / Ollama, a Modelfile, a merged HF folder.

Modules:
- gguf_adapter: A PEFT LoRA adapter -> a GGUF LoRA adapter that llama.cpp and Ollama load, in pure Python
- gguf_names: Hugging Face module names -> GGUF tensor names, per architecture
- merge: The adapter merged into its base model: a plain Hugging Face folder
- modelfile: An Ollama Modelfile for the exported adapter: FROM the base GGUF, ADAPTER ours
"""
