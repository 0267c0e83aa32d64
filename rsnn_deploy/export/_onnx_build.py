"""A small builder over ``onnx.helper``: named constants, one-line nodes, models with our metadata.

Both ONNX exporters hand-build their graphs with it instead of tracing torch, so that
every operator in the file is one we chose (and can explain to a host that runs it
without Python), and the integer graph never passes through floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["IR_VERSION", "OPSET", "GraphBuilder", "Sym", "make_model", "value_info"]

# BitwiseAnd and ReduceMean with axes as an input need opset 18; IR 8 is the oldest that carries it,
# which keeps the files loadable by older runtimes.
OPSET = 18
IR_VERSION = 8

_DTYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.uint64): TensorProto.UINT64,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_dtype(dtype: Any) -> int:
    """The ``TensorProto`` element type of a numpy dtype (only the ones our graphs use)."""
    return _DTYPES[np.dtype(dtype)]


def value_info(name: str, dtype: Any, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    """A typed graph input/output; string dimensions are symbolic (``"B"``, ``"T"``)."""
    return helper.make_tensor_value_info(name, onnx_dtype(dtype), list(shape))


class GraphBuilder:
    """Collects nodes and initializers under unique names.

    ``prefix`` keeps names unique when a Scan body is built beside its outer graph
    (ONNX forbids a body from redefining an outer name).
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value: Any, dtype: Any, name: str | None = None) -> str:
        """An initializer holding ``value`` as ``dtype`` (identical small constants are shared)."""
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        key = (arr.dtype.str, arr.tobytes(), arr.shape)
        if name is None and key in self._consts:
            return self._consts[key]
        out = f"{self.prefix}{name}" if name else self.fresh("c")
        self.initializers.append(numpy_helper.from_array(arr, out))
        if name is None:
            self._consts[key] = out
        return out

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """Append one node with a single output and return that output's name."""
        name = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=self.fresh(op_type), **attrs))
        return name

    def op_multi(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any) -> list[str]:
        """Append one node with several outputs (Scan)."""
        self.nodes.append(helper.make_node(op_type, list(inputs), list(outputs), name=self.fresh(op_type), **attrs))
        return list(outputs)

    def graph(
        self, name: str, inputs: Sequence[onnx.ValueInfoProto], outputs: Sequence[onnx.ValueInfoProto], doc: str = ""
    ) -> onnx.GraphProto:
        return helper.make_graph(self.nodes, name, list(inputs), list(outputs), self.initializers, doc_string=doc)


class Sym:
    """A value of the graph under construction; arithmetic on it appends ONNX nodes.

    It lets a Python function written with ``+ - * @`` (``neuron.neuron_step``,
    ``trace.readout_update``) build its own graph, so that the graph holds that function's
    operations in its order. Numbers and arrays on either side become constants of
    ``dtype``. A named constant keeps its ``value`` and becomes an initializer only when a
    node uses it, so that ``.T`` (a step's ``W^T``) makes the transposed constant alone.
    """

    def __init__(
        self, b: GraphBuilder, name: str | None, dtype: Any, value: np.ndarray | None = None, hint: str = ""
    ) -> None:
        self.b, self._tensor, self.dtype, self.value, self.hint = b, name, np.dtype(dtype), value, hint

    @classmethod
    def const(cls, b: GraphBuilder, value: Any, name: str, dtype: Any) -> Sym:
        return cls(b, None, dtype, np.asarray(value, dtype=dtype), name)

    @property
    def name(self) -> str:
        if self._tensor is None:
            self._tensor = self.b.const(self.value, self.dtype, self.hint)
        return self._tensor

    def _name(self, other: Any) -> str:
        return other.name if isinstance(other, Sym) else self.b.const(other, self.dtype)

    def _op(self, op_type: str, left: Any, right: Any) -> Sym:
        return Sym(self.b, self.b.op(op_type, self._name(left), self._name(right)), self.dtype)

    def __add__(self, other: Any) -> Sym:
        return self._op("Add", self, other)

    def __radd__(self, other: Any) -> Sym:
        return self._op("Add", other, self)

    def __sub__(self, other: Any) -> Sym:
        return self._op("Sub", self, other)

    def __rsub__(self, other: Any) -> Sym:
        return self._op("Sub", other, self)

    def __mul__(self, other: Any) -> Sym:
        return self._op("Mul", self, other)

    def __rmul__(self, other: Any) -> Sym:
        return self._op("Mul", other, self)

    def __matmul__(self, other: Any) -> Sym:
        return self._op("MatMul", self, other)

    @property
    def T(self) -> Sym:
        if self.value is None:
            raise TypeError("Sym.T: only a constant can be transposed")
        return Sym.const(self.b, self.value.T, self.hint + "_t", self.dtype)

    def cast(self) -> Sym:
        """The value (bool, from :meth:`compare`) as 0/1 of this value's dtype."""
        return Sym(self.b, self.b.op("Cast", self.name, to=onnx_dtype(self.dtype)), self.dtype)

    def compare(self, op_type: str, other: Any) -> Sym:
        """A boolean node (``Greater``, ``LessOrEqual``); :meth:`cast` makes it 0/1."""
        return self._op(op_type, self, other)


def make_model(graph: onnx.GraphProto, metadata: Mapping[str, Any], doc: str) -> onnx.ModelProto:
    """Wrap ``graph`` in a checked model; ``metadata`` lands in ``metadata_props`` as ``rsnn_deploy.KEY``."""
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="rsnn-deploy",
        doc_string=doc,
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {f"rsnn_deploy.{k}": str(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """Our ``metadata_props`` without the ``rsnn_deploy.`` prefix."""
    pre = "rsnn_deploy."
    return {p.key[len(pre) :]: p.value for p in model.metadata_props if p.key.startswith(pre)}
