"""Rewrites of converted TFLite flatbuffers: float16 constants, no float round trips on the PCM."""

from __future__ import annotations

import numpy as np

from emograph.components.audio import frontend


def _builtin_codes(graph) -> list[int]:
    """The builtin operator of each operator code of a flatbuffer `ModelT` (codes above 127
    are only in `builtinCode`, older models only fill `deprecatedBuiltinCode`)."""
    return [max(c.builtinCode, c.deprecatedBuiltinCode) for c in graph.operatorCodes]


FLOAT16_MIN_ELEMENTS = 64  # smaller constants (scalars such as the log offset) stay float32


def with_float16_constants(model: bytes, float32_scope: str = frontend.FRONTEND_SCOPE) -> bytes:
    """`model` with its float32 constants stored as float16, each expanded by a DEQUANTIZE op
    (the layout of the converter's float16 mode; runtimes expand them once, at load).

    Constants read by ops named under `float32_scope` stay float32: float16 DFT matrices moved
    the log-mel by up to 2.5e-3, beyond `ExportConfig.max_frontend_error`, and flipped 2% of a
    demo student's test windows. Not the converter's float16 mode: on a quantization-aware
    model its fake-quant ops make that mode emit the int8 model.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    dequantize = schema.BuiltinOperator.DEQUANTIZE
    codes = _builtin_codes(graph)
    if dequantize not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = dequantize
        code.version = 3  # float16 input
        graph.operatorCodes.append(code)
        codes.append(dequantize)
    opcode = codes.index(dequantize)
    halved, kept = set(), set()  # buffers of the constants now float16 / still float32
    for subgraph in graph.subgraphs:
        names = [(t.name or b"").decode() for t in subgraph.tensors]
        exact = {
            int(t)
            for op in subgraph.operators
            if any(float32_scope in names[o] for o in op.outputs)
            for t in op.inputs
        }
        expansions = []
        for index, tensor in enumerate(list(subgraph.tensors)):
            data = graph.buffers[tensor.buffer].data
            if tensor.type != schema.TensorType.FLOAT32 or data is None or not len(data):
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float32)
            if index in exact or values.size < FLOAT16_MIN_ELEMENTS:
                kept.add(tensor.buffer)
                continue
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.astype(np.float16).tobytes(), np.uint8)
            graph.buffers.append(buffer)
            half = schema.TensorT()
            half.shape, half.type = tensor.shape, schema.TensorType.FLOAT16
            half.buffer, half.name = len(graph.buffers) - 1, (tensor.name or b"") + b"/float16"
            subgraph.tensors.append(half)
            halved.add(tensor.buffer)
            op = schema.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = opcode, [len(subgraph.tensors) - 1], [index]
            expansions.append(op)
        subgraph.operators = expansions + list(subgraph.operators)
    for index in halved - kept:  # computed at load now, no longer stored
        graph.buffers[index] = schema.BufferT()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))


def without_float_round_trips(model: bytes) -> bytes:
    """`model` without chains QUANTIZE (float -> int8), [QUANTIZE]..., DEQUANTIZE (-> float).

    Such a chain between two float ops only rounds a tensor to 8 bits. TF 2.16's quantizer
    leaves one on the frontend's first tensor (the PCM cut into hops) although every op around
    it is denylisted: the audio reached the float frontend as 8-bit samples, and a fine-tuned
    teacher's int8 model scored 0.19 UAR instead of its float 0.62. Consumers of the chain's
    end read its float start instead; the chain's ops go.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    codes = _builtin_codes(graph)
    quantize, dequantize = schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE
    for index, subgraph in enumerate(graph.subgraphs):
        producer = {int(t): op for op in subgraph.operators for t in op.outputs}
        start_of: dict[int, int] = {}  # a chain's float end -> its float start
        chains = set()
        for op in subgraph.operators:
            if codes[op.opcodeIndex] != dequantize:
                continue
            chain, source = [op], int(op.inputs[0])
            while source in producer and codes[producer[source].opcodeIndex] == quantize:
                chain.append(producer[source])
                source = int(producer[source].inputs[0])
            if len(chain) > 1 and subgraph.tensors[source].type == schema.TensorType.FLOAT32:
                start_of[int(op.outputs[0])] = source
                chains.update(id(o) for o in chain)
        for op in subgraph.operators:
            op.inputs = [start_of.get(int(t), int(t)) for t in op.inputs]
        subgraph.outputs = [start_of.get(int(t), int(t)) for t in subgraph.outputs]
        for signature in graph.signatureDefs or []:
            if signature.subgraphIndex == index:
                for tensor in signature.outputs:
                    tensor.tensorIndex = start_of.get(tensor.tensorIndex, tensor.tensorIndex)
        live, kept = {int(t) for t in subgraph.outputs}, []
        for op in reversed(subgraph.operators):  # drop the chains' ops nobody reads any more
            if id(op) in chains and not any(int(t) in live for t in op.outputs):
                continue
            kept.append(op)
            live.update(int(t) for t in op.inputs)
        subgraph.operators = kept[::-1]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(graph))
