"""The computation graph of a model as torch.fx traces it: modules, the functions between them
(a residual add, a U-Net's cat), and the tensor shape on every edge.

Where fx cannot trace a model (Python control flow on a tensor), the graph falls back to the
order the modules ran in, read from the layer table, and says why.
"""

from __future__ import annotations

import logging
import operator
import os
import threading
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from deeparch.data.info import DataInfo
from deeparch.introspection.model_graph import (
    BLOCK,
    FUNCTION,
    INPUT,
    MODULE,
    OUTPUT,
    Block,
    GraphEdge,
    GraphNode,
    ModelGraph,
    module_order_graph,
)
from deeparch.introspection.table import (
    dataset_info_for,
    example_input,
    gan_example_inputs,
    summarize,
)
from deeparch.models.registry import create_model, get_arch

logger = logging.getLogger(__name__)

# Calls that only move or relabel a tensor's data: the edge carries on through them.
PASS_THROUGH_METHODS = {"contiguous", "clone", "detach", "float", "to", "type_as"}


# ---------------------------------------------------------------------------------------------
# Tracing


class TracingFailed(Exception):
    """fx could not trace a model; the message says where and why, for a student."""


@dataclass(frozen=True)
class TracedPart:
    """One traced call: `method` of `module` (at `path` in the model) on example inputs."""

    path: str  # "" for the whole model, "generator" for a GAN's generator
    module: nn.Module
    method: str
    inputs: tuple[torch.Tensor, ...]
    concrete: dict[str, Any] = field(default_factory=dict)  # arguments fixed while tracing


# fx patches torch.nn.Module.__call__ for the whole process while it traces: every module call in
# every thread (another tab's table, a training step) reaches the tracing tracer's call_module,
# and nn.Module.__getattr__, so that parameters read anywhere become proxies.
# Traces therefore take turns (two at once could restore each other's patch in the wrong order),
# and a tracer lets other threads' calls through untouched.
_TRACE_LOCK = threading.Lock()


class _Tracer(fx.Tracer):
    """fx's tracer with four changes: it traces any method, treats the modules in `opaque` as
    single nodes, remembers the innermost module whose forward failed to trace, and leaves other
    threads' module calls alone."""

    def __init__(self, method: str, opaque: set[str]) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.traced_func_name = method  # fx traces this method of the root instead of forward
        self.opaque = opaque
        self.failed_in: str | None = None

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        # A module with parameters of its own is one row of the parameter table: one node.
        return (
            qualified_name in self.opaque
            or super().is_leaf_module(module, qualified_name)
            or next(module.parameters(recurse=False), None) is not None
        )

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if threading.get_ident() != self.thread:  # another thread's parameter: the real one
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def call_module(self, module: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if threading.get_ident() != self.thread:  # another thread's model: not being traced
            return forward(*args, **kwargs)
        try:
            return super().call_module(module, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module sees the failure first
                self.failed_in = self.path_of_module(module)
            raise


def _where(error: BaseException) -> str:
    """The last line outside torch an error passed through: "deeparch/models/rnn.py:99, `...`"."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if f"{os.sep}torch{os.sep}" not in frame.filename
    ]
    if not frames:
        return ""
    frame = frames[-1]
    filename = frame.filename
    if f"{os.sep}deeparch{os.sep}" in filename:
        filename = "deeparch" + filename.rsplit(f"{os.sep}deeparch", 1)[1]
    code = f": `{frame.line.strip()}`" if frame.line else ""
    return f" at {filename}:{frame.lineno}{code}"


def _explain(error: BaseException) -> str:
    """One line for a student: fx's complaint and the line of the model it came from."""
    while error.__cause__ is not None:  # ShapeProp wraps the model's own error in its own
        error = error.__cause__
    text = str(error).strip()
    return f"{text.splitlines()[0] if text else type(error).__name__}{_where(error)}"


def _trace(part: TracedPart) -> tuple[fx.GraphModule, dict[str, str]]:
    """A GraphModule of the part, with every submodule fx cannot trace kept whole.

    Returns it with {path: why} for each module kept whole. A failure in the part's own method
    (not inside a submodule) cannot be worked around that way and raises TracingFailed. The
    trace follows training mode, the graph the optimiser sees: a VAE samples z only there.
    """
    opaque: dict[str, str] = {}
    modes = {module: module.training for module in part.module.modules()}
    try:
        part.module.train()
        for _ in modes:  # each retry keeps one more module whole
            tracer = _Tracer(part.method, set(opaque))
            try:
                with _TRACE_LOCK:
                    graph = tracer.trace(part.module, concrete_args=part.concrete or None)
            except Exception as error:  # noqa: BLE001  (fx raises TraceError, TypeError, ...)
                if not tracer.failed_in:
                    raise TracingFailed(_explain(error)) from error
                opaque[tracer.failed_in] = _explain(error)
                continue
            return fx.GraphModule(part.module, graph), opaque
    finally:
        for module, training in modes.items():
            module.training = training
    raise TracingFailed("no submodule could be kept whole to make the model traceable")


def _propagate(module: fx.GraphModule, inputs: Sequence[torch.Tensor]) -> None:
    """Run the traced module once so that every node holds the shape it produced (eval mode:
    BatchNorm refuses a batch of 1 in training mode; dropout would be random)."""
    modes = {submodule: submodule.training for submodule in module.modules()}
    try:
        module.eval()
        with torch.no_grad():
            ShapeProp(module).propagate(*inputs)
    finally:
        for submodule, training in modes.items():
            submodule.training = training


# ---------------------------------------------------------------------------------------------
# From an fx graph to ours


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if isinstance(meta, TensorMetadata) else None


def _makes_tensors(node: fx.Node) -> bool:
    return "tensor_meta" in node.meta  # ShapeProp sets it only where a tensor came out


def _is_pass_through(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Calls that only hand a tensor on: picking one tensor out of a tuple (an LSTM's output,
    a chunk), an identity shortcut, .contiguous(), .float()."""
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.Identity)
    if node.op == "call_method":
        return node.target in PASS_THROUGH_METHODS
    if node.op == "call_function" and node.target is operator.getitem:
        source = node.args[0]
        return isinstance(source, fx.Node) and not isinstance(
            source.meta.get("tensor_meta"), TensorMetadata
        )
    return False


def _index_text(index: object) -> str:
    """hidden[:, -1] for getitem(hidden, (slice(None), -1))."""
    items = index if isinstance(index, tuple) else (index,)

    def one(item: object) -> str:
        if isinstance(item, slice):
            bounds = [
                "" if value is None else str(value) for value in (item.start, item.stop, item.step)
            ]
            return ":".join(bounds[:2] if not bounds[2] else bounds)
        if item is Ellipsis:
            return "..."
        return str(item)

    return "[" + ", ".join(one(item) for item in items) + "]"


def _function_label(node: fx.Node) -> str:
    if node.op == "call_method":
        name = node.target
    else:
        name = getattr(node.target, "__name__", str(node.target))
    if node.target is operator.getitem and len(node.args) > 1:
        return "index " + _index_text(node.args[1])
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    if name in ("cat", "stack", "chunk", "split") and isinstance(dim, int):
        return f"{name} dim={dim}"
    return name


def _scope(node: fx.Node, prefix: str) -> tuple[str, ...]:
    stack = [path for path, _ in node.meta.get("nn_module_stack", {}).values()]
    if node.op == "call_module" and stack:
        stack = stack[:-1]  # the module itself is the node, not a frame around it
    paths = [".".join(p for p in (prefix, path) if p) for path in stack]
    return tuple(dict.fromkeys(([prefix] if prefix else []) + paths))


def _tensor_nodes(value: object) -> list[fx.Node]:
    found: list[fx.Node] = []
    fx.node.map_arg(value, found.append)
    return found


def _part_graph(
    part: TracedPart, traced: fx.GraphModule, opaque: Iterable[str]
) -> tuple[list[GraphNode], list[GraphEdge]]:
    """Our nodes and edges for one traced part: trivial calls dropped or passed through; the
    modules in `opaque` (kept whole) become blocks."""
    modules = dict(traced.named_modules())
    prefix = part.path

    def qualified(path: str) -> str:
        return ".".join(p for p in (prefix, path) if p)

    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    source_of: dict[fx.Node, str] = {}  # fx node -> id of the node that stands for its tensor
    for fx_node in traced.graph.nodes:
        node_id = f"{prefix}:{fx_node.name}" if prefix else fx_node.name
        if fx_node.op == "placeholder":
            if not _makes_tensors(fx_node):
                continue  # a fixed argument (return_hidden=False) or an unused default
            label = f"{prefix} input {fx_node.target}" if prefix else f"input {fx_node.target}"
            node = GraphNode(node_id, INPUT, label, "", scope=_scope(fx_node, prefix))
        elif fx_node.op == "output":
            label = f"{prefix} output" if prefix else "output"
            node = GraphNode(node_id, OUTPUT, label, "", scope=_scope(fx_node, prefix))
        elif fx_node.op == "get_attr" or not _makes_tensors(fx_node):
            continue  # a parameter fetched by a function, or shape arithmetic (x.shape[0])
        elif _is_pass_through(fx_node, modules):
            sources = [source_of[n] for n in _tensor_nodes(fx_node.args) if n in source_of]
            if sources:
                source_of[fx_node] = sources[0]
            continue
        elif fx_node.op == "call_module":
            module = modules[fx_node.target]
            node = GraphNode(
                node_id,
                BLOCK if fx_node.target in opaque else MODULE,
                qualified(fx_node.target),
                type(module).__name__,
                params=_count(module),
                scope=_scope(fx_node, prefix),
            )
        else:
            node = GraphNode(
                node_id, FUNCTION, _function_label(fx_node), "", scope=_scope(fx_node, prefix)
            )
        nodes.append(node)
        source_of[fx_node] = node.id
        for argument in _tensor_nodes((fx_node.args, fx_node.kwargs)):
            if argument in source_of:
                edges.append(GraphEdge(source_of[argument], node.id, _shape(argument)))
    return nodes, edges


def _count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def _blocks(model: nn.Module, nodes: list[GraphNode]) -> list[Block]:
    """The modules that frame two or more nodes; a class of our own held twice is `repeated`."""
    modules = dict(model.named_modules())
    inside = Counter(path for node in nodes for path in node.scope)
    paths = [path for path, count in inside.items() if count >= 2 and path in modules]
    own_classes = Counter(
        type(modules[path]) for path in paths if not _is_torch_class(modules[path])
    )
    return [
        Block(
            path,
            type(modules[path]).__name__,
            _count(modules[path]),
            repeated=own_classes.get(type(modules[path]), 0) >= 2,
        )
        for path in sorted(paths, key=lambda p: p.count("."))
    ]


def _is_torch_class(module: nn.Module) -> bool:
    return type(module).__module__.startswith("torch.")


def trace_graph(model: nn.Module, parts: Sequence[TracedPart], title: str = "") -> ModelGraph:
    """The graph of a model from its traced parts; raises TracingFailed where fx cannot trace."""
    nodes: list[GraphNode] = []
    edges: list[GraphEdge] = []
    notes: list[str] = []
    for part in parts:
        traced, opaque = _trace(part)
        try:
            _propagate(traced, part.inputs)
        except Exception as error:  # noqa: BLE001  (the traced code took a path the model won't)
            raise TracingFailed(f"the traced graph does not run: {_explain(error)}") from error
        part_nodes, part_edges = _part_graph(part, traced, opaque)
        nodes += part_nodes
        edges += part_edges
        for path, why in opaque.items():
            qualified = ".".join(p for p in (part.path, path) if p)
            notes.append(f"{qualified} is drawn as one box: fx cannot trace inside it; {why}")
    used = {edge.source for edge in edges} | {edge.target for edge in edges}
    nodes = [node for node in nodes if node.id in used or node.kind not in (INPUT, OUTPUT)]
    edges = list(dict.fromkeys(edges))  # x + x: one arrow
    title = title or type(model).__name__
    return ModelGraph(title, nodes, edges, _blocks(model, nodes), notes=notes)


def module_parts(model: nn.Module, info: DataInfo, task: str) -> list[TracedPart]:
    """What to trace of a model of this task, on the example input of its dataset."""
    if task == "gan":
        # Generator and discriminator are trained as two players, each on its own input.
        inputs = gan_example_inputs(model, info)
        return [
            TracedPart(part, getattr(model, part), "forward", inputs[part])
            for part in ("generator", "discriminator")
        ]
    example = example_input(info)
    if task == "sequence" and example.is_floating_point():
        # embed(x) hands float sequences on unchanged, but it asks the dtype to know so: Python
        # control flow fx cannot trace. classify_embedded is everything after it.
        return [TracedPart("", model, "classify_embedded", (example,), {"return_hidden": False})]
    return [TracedPart("", model, "forward", (example,))]


# ---------------------------------------------------------------------------------------------
# A registered architecture


def summarize_graph(
    arch_name: str, overrides: dict[str, Any] | None = None, dataset: str | None = None
) -> ModelGraph:
    """The traced graph of a registered architecture, or its module order where fx fails."""
    spec = get_arch(arch_name)
    info = dataset_info_for(arch_name, dataset)
    model, _ = create_model(arch_name, overrides, info)
    try:
        return trace_graph(model, module_parts(model, info, spec.task), title=arch_name)
    except TracingFailed as error:
        logger.info("%s drawn in module order: %s", arch_name, error)
        return module_order_graph(summarize(arch_name, overrides, dataset), str(error))
