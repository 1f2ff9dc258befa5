"""all-MiniLM-L6-v2 on ONNX Runtime: the same forward pass as ``embedder.forward``, written
as an ONNX graph (with the ``onnx`` package's helpers) from the bundled weights at start-up,
in memory; nothing is downloaded or cached on disk. One thread, like the numpy path.

Importing this module raises ``ImportError`` when ``onnx`` or ``onnxruntime`` is missing;
``MiniLMEmbedder`` then falls back to numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from toolrun.retrieval.embedder import Weights

OPSET = 20  # Gelu and LayerNormalization are single operators from here on


class _Graph:
    """Collects nodes and initializers; each ``op`` returns its (first) output's name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        self._count += 1
        output = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output


def build_model(w: Weights) -> bytes:
    """The serialized ONNX model. Inputs: ``ids`` (batch x width, int64), ``positions``
    (width, int64: ``0..width-1``), ``mask`` (batch x width, float32: 1 for real tokens).
    Output: ``embeddings`` (batch x dim, float32, unit length)."""
    g = _Graph()
    dim = w.word.shape[1]
    heads, size = w.heads, dim // w.heads
    g.const("word", w.word)
    g.const("position", w.position)
    g.const("token_type", w.token_type)
    split_heads = g.const("split_heads", np.array([0, 0, 3, heads, size], dtype=np.int64))
    merge_heads = g.const("merge_heads", np.array([0, 0, dim], dtype=np.int64))
    axis1 = g.const("axis1", np.array([1], dtype=np.int64))
    axes12 = g.const("axes12", np.array([1, 2], dtype=np.int64))
    axis2 = g.const("axis2", np.array([2], dtype=np.int64))
    index = [g.const(f"index{i}", np.array(i, dtype=np.int64)) for i in range(3)]
    one = g.const("one", np.array(1.0, dtype=np.float32))
    big = g.const("minus_big", np.array(-1e9, dtype=np.float32))

    def layer_norm(x: str, name: str, norm: tuple[np.ndarray, np.ndarray]) -> str:
        gain, bias = g.const(name + ".gain", norm[0]), g.const(name + ".bias", norm[1])
        return g.op("LayerNormalization", x, gain, bias, axis=-1, epsilon=1e-12)

    def linear(x: str, name: str, weight: np.ndarray, bias: np.ndarray) -> str:
        product = g.op("MatMul", x, g.const(name + ".weight", weight))
        return g.op("Add", product, g.const(name + ".bias", bias))

    x = g.op("Add", g.op("Gather", "word", "ids"), g.op("Gather", "position", "positions"))
    x = layer_norm(g.op("Add", x, "token_type"), "embeddings", w.norm)
    # 0 for real tokens, -1e9 for padding, broadcast over heads and query positions
    bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", one, "mask"), big), axes12)
    for n, layer in enumerate(w.layers):
        p = f"layer{n}"
        qkv = linear(x, p + ".qkv", layer.qkv, layer.qkv_bias)
        qkv = g.op("Transpose", g.op("Reshape", qkv, split_heads), perm=[2, 0, 3, 1, 4])
        q, k, v = (g.op("Gather", qkv, i, axis=0) for i in index)
        scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
        weights = g.op("Softmax", g.op("Add", scores, bias), axis=-1)
        context = g.op("Transpose", g.op("MatMul", weights, v), perm=[0, 2, 1, 3])
        context = g.op("Reshape", context, merge_heads)
        attended = linear(context, p + ".out", layer.out, layer.out_bias)
        x = layer_norm(g.op("Add", x, attended), p + ".norm1", layer.norm1)
        hidden = g.op("Gelu", linear(x, p + ".up", layer.up, layer.up_bias))
        down = linear(hidden, p + ".down", layer.down, layer.down_bias)
        x = layer_norm(g.op("Add", x, down), p + ".norm2", layer.norm2)
    summed = g.op("ReduceSum", g.op("Mul", x, g.op("Unsqueeze", "mask", axis2)), axis1, keepdims=0)
    pooled = g.op("Div", summed, g.op("ReduceSum", "mask", axis1, keepdims=1))
    norm = g.op("ReduceL2", pooled, axis1, keepdims=1)
    g.nodes.append(helper.make_node("Div", [pooled, norm], ["embeddings"]))

    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "width"]),
            helper.make_tensor_value_info("positions", TensorProto.INT64, ["width"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", dim])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 9  # what onnxruntime releases since 1.16 read
    data: bytes = model.SerializeToString()
    return data


class OnnxMiniLM:
    def __init__(self, w: Weights) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # no warnings about unused initializers
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            build_model(w), options, providers=["CPUExecutionProvider"]
        )

    def forward(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        width = tokens.shape[1]
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.float32)
        feed = {"ids": tokens, "positions": np.arange(width, dtype=np.int64), "mask": mask}
        result: np.ndarray = self.session.run(["embeddings"], feed)[0]
        return result
