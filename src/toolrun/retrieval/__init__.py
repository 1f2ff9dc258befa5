"""Tool retrieval: BM25, dense embeddings (all-MiniLM-L6-v2 in numpy) and their fusion.

numpy and tokenizers are imported only when an index is built. The platform's index is
``Platform.retrieval`` (:class:`~toolrun.retrieval.service.RetrievalService`).
"""
