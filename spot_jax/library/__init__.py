"""The prompt library (SPoT, Vu et al. 2022): source prompts and task embeddings of many tuning runs
on one frozen model, kept by (task, run) in a directory (local or gs://) for retrieval and transfer.

  store.py        the on-disk library: PromptLibrary, Entry, ModelIdentity, LibraryError
  similarity.py   task-embedding similarity and retrieval (SPoT §3.2-3.3)
  peft_export.py  a prompt as an HF PEFT prompt-tuning adapter (adapter_config.json + safetensors)

Nothing is imported here, so `import spot_jax.library.peft_export` does not pull in the store.
"""
