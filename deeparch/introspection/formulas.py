"""Per-layer arithmetic: parameter formulas with their numbers, mult-adds, receptive fields."""

from __future__ import annotations

import math

import torch
from torch import nn

from deeparch.introspection.convmath import receptive_field

# Gates per recurrent layer type: an LSTM has input, forget, cell and output gates; a GRU has
# reset, update and new; a plain RNN a single tanh (or relu) layer.
RECURRENT_GATES = {
    nn.LSTM: 4,
    nn.GRU: 3,
    nn.RNN: 1,
    nn.LSTMCell: 4,
    nn.GRUCell: 3,
    nn.RNNCell: 1,
}

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _gates(module: nn.Module) -> int | None:
    for cls, gates in RECURRENT_GATES.items():
        if isinstance(module, cls):
            return gates
    return None


def own_parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))


def _x(numbers: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(n) for n in numbers)


def _conv_formula(conv: nn.modules.conv._ConvNd) -> tuple[str, int]:
    kernel = tuple(conv.kernel_size)
    bias = conv.bias is not None
    if conv.transposed:
        # Weight (in, out/groups, *k): each input channel owns out/groups filters of k x k.
        per_group = (
            f"{conv.out_channels}/{conv.groups}" if conv.groups > 1 else f"{conv.out_channels}"
        )
        text = f"{conv.in_channels}x({per_group}x{_x(kernel)})"
        value = conv.in_channels * (conv.out_channels // conv.groups) * math.prod(kernel)
    else:
        # Weight (out, in/groups, *k): each output channel is one filter over in/groups channels.
        per_group = (
            f"{conv.in_channels}/{conv.groups}" if conv.groups > 1 else f"{conv.in_channels}"
        )
        text = f"{conv.out_channels}x({per_group}x{_x(kernel)})"
        value = conv.out_channels * (conv.in_channels // conv.groups) * math.prod(kernel)
    if bias:
        text += f"+{conv.out_channels}"
        value += conv.out_channels
    return text, value


def _linear_formula(linear: nn.Linear) -> tuple[str, int]:
    text = f"{linear.in_features}x{linear.out_features}"
    value = linear.in_features * linear.out_features
    if linear.bias is not None:
        text += f"+{linear.out_features}"
        value += linear.out_features
    return text, value


def _recurrent_term(
    gates: int, hidden: int, inputs: int, recurrent: int, bias: bool
) -> tuple[str, int]:
    """gates x (hidden x (input + recurrent) + 2 x hidden): two weight matrices, two biases."""
    if bias:
        text = f"{gates}x({hidden}x({inputs}+{recurrent})+2x{hidden})"
        value = gates * (hidden * (inputs + recurrent) + 2 * hidden)
    else:
        text = f"{gates}x({hidden}x({inputs}+{recurrent}))"
        value = gates * hidden * (inputs + recurrent)
    return text, value


def _recurrent_formula(module: nn.Module, gates: int) -> tuple[str, int]:
    hidden = module.hidden_size
    if isinstance(module, nn.RNNCellBase):
        return _recurrent_term(gates, hidden, module.input_size, hidden, module.bias)
    projection = getattr(module, "proj_size", 0)
    recurrent = projection or hidden  # with a projection, h_t is projected before it recurs
    directions = 2 if module.bidirectional else 1
    terms, total = [], 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else recurrent * directions
        text, value = _recurrent_term(gates, hidden, inputs, recurrent, module.bias)
        if projection:
            text += f"+{projection}x{hidden}"
            value += projection * hidden
        if directions == 2:
            text = f"2x[{text}]"
            value *= 2
        terms.append(text)
        total += value
    return " + ".join(terms), total


def _norm_formula(norm: nn.Module) -> tuple[str, int]:
    if isinstance(norm, nn.LayerNorm):
        shape = tuple(norm.normalized_shape)
        size = _x(shape) if len(shape) == 1 else f"({_x(shape)})"
        count = (norm.weight is not None) + (norm.bias is not None)
        return (f"{count}x{size}" if count > 1 else size), count * math.prod(shape)
    channels = norm.num_features if hasattr(norm, "num_features") else norm.num_channels
    # Scale (gamma) and shift (beta) per channel; running statistics are buffers, not parameters.
    return f"2x{channels}", 2 * channels


def _generic_formula(module: nn.Module) -> str:
    terms = [
        f"{name} {_x(tuple(p.shape)) or '1'}" for name, p in module.named_parameters(recurse=False)
    ]
    return " + ".join(terms)


def parameter_formula(module: nn.Module) -> str:
    """How a layer's own parameter count arises, with its numbers, e.g. "32x(1x3x3)+32 = 320".

    Every formula is checked against the layer's actual parameters; a layer whose parameters do not
    match a known formula (a custom layer, an unusual option) gets its parameter shapes listed.
    """
    actual = own_parameter_count(module)
    if actual == 0:
        return "0"
    known: tuple[str, int] | None = None
    gates = _gates(module)
    if isinstance(module, nn.modules.conv._ConvNd):
        known = _conv_formula(module)
    elif isinstance(module, nn.Linear):
        known = _linear_formula(module)
    elif gates is not None:
        known = _recurrent_formula(module, gates)
    elif isinstance(module, _NORMS) and module.weight is not None:
        known = _norm_formula(module)
    elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        vocabulary, width = module.num_embeddings, module.embedding_dim
        known = f"{vocabulary}x{width}", vocabulary * width
    if known is not None and known[1] == actual:
        return f"{known[0]} = {actual:,}"
    return f"{_generic_formula(module)} = {actual:,}"


def recurrent_legend(module: nn.Module) -> str:
    """What the numbers in a recurrent layer's formula stand for."""
    gates = _gates(module)
    if gates is None:
        return ""
    scope = "" if isinstance(module, nn.RNNCellBase) else " per layer and direction"
    return (
        f"{gates} gate(s) x (hidden x (input + hidden) weights + 2 x hidden biases){scope}; "
        "the input of a deeper layer is the hidden state of the one below"
    )


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, nn.utils.rnn.PackedSequence):
        return value.data
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        for item in value.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _recurrent_steps(module: nn.Module, first_input: object) -> int:
    """How many (sample, time step) pairs a recurrent layer processed in one call."""
    if isinstance(first_input, nn.utils.rnn.PackedSequence):
        return first_input.data.shape[0]
    tensor = _first_tensor(first_input)
    if tensor is None:
        return 0
    if isinstance(module, nn.RNNCellBase):
        return tensor.shape[0] if tensor.dim() == 2 else 1
    if tensor.dim() == 2:  # unbatched (T, F)
        return tensor.shape[0]
    return tensor.shape[0] * tensor.shape[1]


def _recurrent_mult_adds_per_step(module: nn.Module, gates: int) -> int:
    hidden = module.hidden_size
    if isinstance(module, nn.RNNCellBase):
        return gates * hidden * (module.input_size + hidden)
    projection = getattr(module, "proj_size", 0)
    recurrent = projection or hidden
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else recurrent * directions
        total += directions * (gates * hidden * (inputs + recurrent) + projection * hidden)
    return total


def mult_adds(module: nn.Module, inputs: tuple, output: object) -> int:
    """Multiply-accumulates of one call over its whole batch (biases and activations count 0).

    Linear: in x out per output position; Conv: (in/groups x k...) per output element;
    ConvTranspose: (out/groups x k...) per input element; recurrent layers: the gate matrix products
    per time step. Other layers count 0: their cost is small next to these.
    """
    first_input = inputs[0] if inputs else None
    out = _first_tensor(output)
    gates = _gates(module)
    if isinstance(module, nn.modules.conv._ConvNd):
        kernel = math.prod(module.kernel_size)
        if module.transposed:
            source = _first_tensor(first_input)
            if source is None:
                return 0
            return source.numel() * (module.out_channels // module.groups) * kernel
        if out is None:
            return 0
        return out.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return 0 if out is None else out.numel() * module.in_features
    if isinstance(module, nn.Bilinear):
        return 0 if out is None else out.numel() * module.in1_features * module.in2_features
    if gates is not None:
        return _recurrent_steps(module, first_input) * _recurrent_mult_adds_per_step(module, gates)
    return 0


def first_tensor(value: object) -> torch.Tensor | None:
    """The first tensor inside a layer's output (LSTMs return (output, (h, c)))."""
    return _first_tensor(value)


def tensor_shapes(value: object) -> object:
    """The shapes of every tensor in a (possibly nested) output, in the same nesting."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, nn.utils.rnn.PackedSequence):
        return tuple(value.data.shape)
    if isinstance(value, (tuple, list)):
        return tuple(tensor_shapes(item) for item in value)
    return None


# Receptive fields along the executed graph. A tensor's state is a tuple with one path per spatial
# axis, each path the (kernel, stride, dilation) of the windowed layers it went through, () before
# any; None once a layer has mixed every position (a Linear on a flat vector, a recurrent layer, an
# adaptive pool) or has a field this arithmetic does not model (transposed convs, upsampling).
FieldState = tuple[tuple[tuple[int, int, int], ...], ...] | None

_POOLS = {
    nn.MaxPool1d: 1,
    nn.MaxPool2d: 2,
    nn.MaxPool3d: 3,
    nn.AvgPool1d: 1,
    nn.AvgPool2d: 2,
    nn.AvgPool3d: 3,
}
_MIXERS = (
    nn.RNNBase,
    nn.RNNCellBase,
    nn.MultiheadAttention,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.conv._ConvTransposeNd,
    nn.Upsample,
)


def _per_axis(value: int | tuple[int, ...], axes: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * axes


def _windowed(module: nn.Module) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None:
    """(kernel, stride, dilation) per axis of a convolution or pooling layer, else None."""
    if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
        return tuple(module.kernel_size), tuple(module.stride), tuple(module.dilation)
    for cls, axes in _POOLS.items():
        if isinstance(module, cls):
            kernel = _per_axis(module.kernel_size, axes)
            stride = _per_axis(module.stride or module.kernel_size, axes)
            dilation = _per_axis(getattr(module, "dilation", 1), axes)
            return kernel, stride, dilation
    return None


def is_windowed(module: nn.Module) -> bool:
    """Whether a layer slides a window (convolution or pooling), so it has a receptive field."""
    return _windowed(module) is not None


def advance_field(module: nn.Module, state: FieldState, first_input: object) -> FieldState:
    """The receptive-field state of a leaf layer's output, given its input's state."""
    window = _windowed(module)
    if window is not None:
        kernel, stride, dilation = window
        if state == ():
            state = ((),) * len(kernel)
        if state is None or len(state) != len(kernel):
            return None
        return tuple(path + ((k, s, d),) for path, k, s, d in zip(state, kernel, stride, dilation))
    if isinstance(module, _MIXERS):
        return None
    source = _first_tensor(first_input)
    if isinstance(module, (nn.Linear, nn.Bilinear)) and source is not None and source.dim() <= 2:
        return None  # a dense layer on a flat vector sees the whole input
    return state


def _width(state: FieldState) -> float:
    if state is None:
        return math.inf
    return math.prod(receptive_field(path)[0] for path in state) if state else 1


class FieldTracker:
    """Follows receptive fields through one forward pass, fed by every module's hooks.

    Each tensor a module receives or returns is remembered with its state. A tensor made outside
    any module (F.pad, a view, a residual sum, a concatenation) takes the widest field seen so far
    inside the enclosing module call: a sum or concatenation sees everything its branches saw.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._states: dict[int, tuple[torch.Tensor, FieldState]] = {}
        # One frame per open module call: the state of its input, then of each child's output.
        self._frames: list[list[FieldState]] = [[()]]

    def _lookup(self, tensor: torch.Tensor | None) -> FieldState:
        if tensor is not None and id(tensor) in self._states:
            kept, state = self._states[id(tensor)]
            if kept is tensor:  # ids are reused once a tensor is freed; the kept reference says
                return state
        return max(self._frames[-1], key=_width)

    def _remember(self, tensor: torch.Tensor | None, state: FieldState) -> None:
        if tensor is not None:
            self._states[id(tensor)] = (tensor, state)

    def enter(self, inputs: tuple) -> None:
        """A forward pre-hook: remember what enters a module (a residual branch reads it again)."""
        tensor = _first_tensor(inputs[0] if inputs else None)
        state = self._lookup(tensor)
        self._remember(tensor, state)
        self._frames.append([state])

    def leave(self, module: nn.Module, inputs: tuple, output: object, is_leaf: bool) -> FieldState:
        """A forward hook: the state of a module's output."""
        frame = self._frames.pop() if len(self._frames) > 1 else [()]
        first_input = inputs[0] if inputs else None
        output_tensor = _first_tensor(output)
        if is_leaf:
            state = advance_field(module, self._lookup(_first_tensor(first_input)), first_input)
        elif output_tensor is not None and id(output_tensor) in self._states:
            state = self._lookup(output_tensor)
        else:
            state = max(frame, key=_width)
        self._remember(output_tensor, state)
        self._frames[-1].append(state)
        return state
