"""Write a real .tflite model without TensorFlow: FULLY_CONNECTED (+ SOFTMAX) from LiteRT's schema."""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as s


def _tensor(shape: list[int], buffer: int, name: str) -> s.TensorT:
    t = s.TensorT()
    t.shape = shape
    t.type = s.TensorType.FLOAT32
    t.buffer = buffer
    t.name = name.encode()
    return t


def _buffer(data: np.ndarray | None) -> s.BufferT:
    b = s.BufferT()
    if data is not None:
        b.data = np.frombuffer(np.ascontiguousarray(data, dtype=np.float32).tobytes(), np.uint8)
    return b


def _opcode(code: int) -> s.OperatorCodeT:
    oc = s.OperatorCodeT()
    oc.builtinCode = code
    oc.deprecatedBuiltinCode = code
    oc.version = 1
    return oc


def write_dense_model(path: Path, weights: np.ndarray, bias: np.ndarray, softmax: bool) -> Path:
    """y = softmax(x @ W.T + b) (or without softmax): weights has shape (units, features)."""
    units, features = weights.shape
    tensors = [_tensor([1, features], 0, "x"), _tensor([units, features], 1, "w"),
               _tensor([units], 2, "b"), _tensor([1, units], 0, "logits")]
    fc = s.OperatorT()
    fc.opcodeIndex = 0
    fc.inputs, fc.outputs = [0, 1, 2], [3]
    fc.builtinOptionsType = s.BuiltinOptions.FullyConnectedOptions
    fc.builtinOptions = s.FullyConnectedOptionsT()
    ops, codes, outputs = [fc], [_opcode(s.BuiltinOperator.FULLY_CONNECTED)], [3]
    if softmax:
        tensors.append(_tensor([1, units], 0, "probabilities"))
        sm = s.OperatorT()
        sm.opcodeIndex = 1
        sm.inputs, sm.outputs = [3], [4]
        sm.builtinOptionsType = s.BuiltinOptions.SoftmaxOptions
        opts = s.SoftmaxOptionsT()
        opts.beta = 1.0
        sm.builtinOptions = opts
        ops.append(sm)
        codes.append(_opcode(s.BuiltinOperator.SOFTMAX))
        outputs = [4]
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], outputs, ops
    graph.name = b"main"
    model = s.ModelT()
    model.version = 3
    model.operatorCodes = codes
    model.subgraphs = [graph]
    model.buffers = [_buffer(None), _buffer(weights), _buffer(bias)]
    model.description = b"factory-edge-agent test model"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path
