"""The prompt library (SPoT, Vu et al. 2022): source prompts and task embeddings of many tuning runs
on one frozen model, kept by (task, run) in a directory (local or gs://) for retrieval and transfer.

  store.py        the on-disk library: PromptLibrary, Entry, ModelIdentity, LibraryError
  index.py        its retrieval index: every embedding's similarity vectors, precomputed
  similarity.py   the similarity metrics as dot products of per-prompt vectors; rank; weights
  retrieval.py    ranking sources for a target (centring, same-seed runs), the top-k mix
  released.py     the library shipped with spot_jax: the embedded model's 16 sources
  peft_export.py  a prompt as an HF PEFT prompt-tuning adapter (adapter_config.json + safetensors)

Nothing is imported here, so `import spot_jax.library.peft_export` does not pull in the store.
"""
