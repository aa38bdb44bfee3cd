"""The rerank worker: the only package that imports torch and sentence-transformers."""
