"""Tool retrieval: BM25, dense embeddings (all-MiniLM-L6-v2 on ONNX Runtime, or in numpy)
and their fusion.

numpy, tokenizers and the model are imported only when an index is built. The platform's index is
``Platform.retrieval`` (:class:`~toolrun.retrieval.service.RetrievalService`).
"""
